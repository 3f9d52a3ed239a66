"""Convert the RECCE authors' trained weights into a dfbench checkpoint (dfbench import-recce).

The authors' file is their trainer's best_model_STEP.bin / latest_model.bin
(weights under "model") or the state dict alone, as their inference.py takes
it. The written file is a Lightning checkpoint that dfbench test, validate
and predict take with --ckpt_path, stacked on configs/detectors/recce.yaml
(the printed command shows how).
"""

from __future__ import annotations

from src.cli.import_weights import ImportVerb

VERB = ImportVerb(
    "import-recce",
    __doc__,
    weights_help="the authors' .bin file (their trainer's checkpoint) or state dict",
    converter="src.detectors.recce_importer:write_checkpoint",
    test_args="-c configs/detectors/recce.yaml",
)
build_parser = VERB.build_parser
run = VERB.run
