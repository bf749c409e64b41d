from spendgate.cli import main

main()
