from ssbg.cli.main import main

main()
