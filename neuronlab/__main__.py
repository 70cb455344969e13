import sys

from neuronlab.cli import main

sys.exit(main())
