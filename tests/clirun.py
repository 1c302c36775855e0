"""Run the command-line tool as an administrator would: ``python tests/clirun.py ARGS``.

Loads ``common/`` under the name ``pixstor_azure`` from beside the plugins, as the plugins do,
so the tool runs the same whether or not the package is installed (the Python 3.6 run does
not install it), then hands the arguments to ``pixstor_azure.tool.cli.main``.
"""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

if __name__ == "__main__":
    spec = importlib.util.spec_from_file_location(
        "pixstor_azure", str(ROOT / "common" / "__init__.py")
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules["pixstor_azure"] = package
    spec.loader.exec_module(package)

    from pixstor_azure.tool import cli

    sys.exit(cli.main())
