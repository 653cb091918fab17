"""``python -m eventuality.cli``: the ``eventuality`` command."""

from . import main

if __name__ == "__main__":
    main()
