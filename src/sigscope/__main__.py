from sigscope.cli.main import main

main()
