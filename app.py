"""The dreamer web UI: `python app.py [--host H] [--port P] [--out DIR]`, the same as `dreamer ui`."""
import sys

from dreamer.ui.app import main

if __name__ == "__main__":
    sys.exit(main())
