"""`python -m controller` is `externalsource-controller`."""

from controller.main import main

main()
