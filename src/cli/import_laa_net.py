"""Convert the LAA-Net authors' released weights into a dfbench checkpoint (dfbench import-laa-net).

The written file is a Lightning checkpoint that dfbench test, validate and
predict take with --ckpt_path, stacked on configs/detectors/laa_net.yaml with
authors_padding on (the printed command shows how).
"""

from __future__ import annotations

from src.cli.import_weights import ImportVerb

VERB = ImportVerb(
    "import-laa-net",
    __doc__,
    weights_help="the authors' released .pth file (EfficientNet-B4 LAA-Net)",
    converter="src.detectors.laa_net.importer:write_checkpoint",
    test_args="-c configs/detectors/laa_net.yaml --model.init_args.authors_padding=true",
)
build_parser = VERB.build_parser
run = VERB.run
