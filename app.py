"""The Gradio web UI. Not built yet: the CLI (`dreamer generate`) is the way to run jobs today."""
import sys

if __name__ == "__main__":
    print("dreamer: error: the web UI is not available in this version; use `dreamer generate PROMPT`",
          file=sys.stderr)
    sys.exit(2)
