from imix_sweeps.run import main

main()
