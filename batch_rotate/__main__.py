from batch_rotate.cli import main

main()
