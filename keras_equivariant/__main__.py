"""``python -m keras_equivariant``: the ``keras-equivariant`` command line."""

import sys

from keras_equivariant.cli.main import main

sys.exit(main())
