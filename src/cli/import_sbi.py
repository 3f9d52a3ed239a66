"""Convert the SBI authors' released weights into a dfbench checkpoint (dfbench import-sbi).

Their files (FFraw.tar, FFc23.tar, or a weights/*.tar of their training) hold
the EfficientNet-B4 detector under "model". The written file is a Lightning
checkpoint that dfbench test, validate and predict take with --ckpt_path,
stacked on configs/detectors/sbi.yaml (the printed command shows how).
"""

from __future__ import annotations

from src.cli.import_weights import ImportVerb

VERB = ImportVerb(
    "import-sbi",
    __doc__,
    weights_help="the authors' released file (FFraw.tar or FFc23.tar)",
    converter="src.detectors.sbi:write_checkpoint",
    test_args="-c configs/detectors/sbi.yaml",
)
build_parser = VERB.build_parser
run = VERB.run
