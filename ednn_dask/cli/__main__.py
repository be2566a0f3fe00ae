"""``python -m ednn_dask.cli``: the same as the ``ednn-dask`` command."""
import sys

from . import main

sys.exit(main())
