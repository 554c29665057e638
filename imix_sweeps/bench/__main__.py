from imix_sweeps.bench.cli import main

main()
