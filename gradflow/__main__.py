from gradflow.cli.app import main

main()
