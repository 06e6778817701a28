from gatekeeper.cli import main

# Guarded: the worker processes of `gatekeeper serve --workers` import this module again (spawn).
if __name__ == "__main__":
    main()
