"""`python -m rnnlab`: the `rnnlab` command (rnnlab.commands)."""

from rnnlab.commands import main

if __name__ == "__main__":
    main()
