"""The benchmark runner: grids of cells, a results store, paper-style tables, W&B."""
