from gradflow.cli import main

main()
