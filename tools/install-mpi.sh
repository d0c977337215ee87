#!/usr/bin/env bash
# Installs Open MPI when it is missing: openmpi-bin (mpirun, which starts the ranks of a
# data-parallel run and brings them together) and libopenmpi-dev (the development files of
# libmpi, which ra3 loads by P/Invoke under mpirun: src/RA3.Kernels/Distributed). A single ra3
# process needs neither; the data-parallel tests fail without them, saying why. Fails when it
# cannot install.
set -euo pipefail
here=$(dirname "$0")
"$here/apt-install.sh" mpirun openmpi-bin "mpirun, for data-parallel runs and their tests"
multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
"$here/apt-install.sh" "/usr/lib/$multiarch/openmpi/include/mpi.h" libopenmpi-dev "Open MPI's libmpi for ra3 under mpirun"
