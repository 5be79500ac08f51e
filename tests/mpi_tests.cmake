# Tests that run under mpirun, registered in CTest. Included from tests/CMakeLists.txt.
#
#   llama_tp_add_mpi_test(<name> <nranks> [TIMEOUT <seconds>] COMMAND <command> [args...])
#
# runs `mpiexec -n <nranks> <command> [args...]` with more ranks than cores allowed and with
# Open MPI's permission to run as root (containers and CI run as root), failing after TIMEOUT
# seconds (default 300) so a stuck collective never stalls the whole suite.
set(LLAMA_TP_MPI_TEST_TIMEOUT 300 CACHE STRING "Default time limit in seconds for each mpirun test")

# --oversubscribe is Open MPI's; MPICH's Hydra oversubscribes without being asked.
set(_llama_tp_mpiexec_flags ${MPIEXEC_PREFLAGS})
execute_process(COMMAND ${MPIEXEC_EXECUTABLE} --version OUTPUT_VARIABLE _llama_tp_mpiexec_version ERROR_QUIET)
if(_llama_tp_mpiexec_version MATCHES "Open MPI|OpenRTE")
  list(APPEND _llama_tp_mpiexec_flags --oversubscribe)
endif()

function(llama_tp_add_mpi_test name nranks)
  cmake_parse_arguments(PARSE_ARGV 2 ARG "" "TIMEOUT" "COMMAND")
  if(NOT ARG_COMMAND)
    message(FATAL_ERROR "llama_tp_add_mpi_test(${name}): give the program to run after COMMAND")
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT ${LLAMA_TP_MPI_TEST_TIMEOUT})
  endif()
  # FindMPI's post-flags go right after the program, before its own arguments.
  list(POP_FRONT ARG_COMMAND program)
  add_test(NAME ${name}
    COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${nranks} ${_llama_tp_mpiexec_flags}
            ${program} ${MPIEXEC_POSTFLAGS} ${ARG_COMMAND})
  set_tests_properties(${name} PROPERTIES
    ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"
    TIMEOUT ${ARG_TIMEOUT}
    LABELS mpi)
endfunction()

# The communicator, rank and launch tests at several world sizes (run alone they are a world of
# one, through gtest_discover_tests).
if(TARGET test_parallel)
  foreach(nranks 2 4)
    llama_tp_add_mpi_test(parallel_mpi_np${nranks} ${nranks} TIMEOUT 600 COMMAND $<TARGET_FILE:test_parallel>)
  endforeach()
endif()
