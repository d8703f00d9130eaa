from vudo.cli.main import main

main()
