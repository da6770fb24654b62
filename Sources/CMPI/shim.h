#ifndef VITZOO_CMPI_SHIM_H
#define VITZOO_CMPI_SHIM_H
// OpenMPI's C API: types and constants only. zoo does not link libmpi (see module.modulemap), so
// the header is found on the default include path rather than through pkg-config (whose `-lmpi`
// SwiftPM would add to the link): Debian/Ubuntu's libopenmpi-dev installs it as
// <x86_64-linux-gnu/openmpi/mpi.h> (multiarch include directory), elsewhere as <mpi.h>.
#define OMPI_SKIP_MPICXX 1
#if __has_include(<openmpi/mpi.h>)
#include <openmpi/mpi.h>
#elif __has_include(<mpi.h>)
#include <mpi.h>
#else
#error "mpi.h not found: install OpenMPI's development files (apt-get install libopenmpi-dev openmpi-bin)"
#endif
#ifndef OPEN_MPI
#error "vitzoo's distributed training needs OpenMPI's mpi.h (found another MPI implementation's)"
#endif
#endif
