# scripts/env.sh — sourced by the demo, the tests and CI: what Open MPI needs on this kind of
# machine. We run as root in CI and containers: Open MPI refuses that unless told.
if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# Containers often forbid the cross-memory-attach syscalls of the vader BTL.
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
# No InfiniBand/UCX probing noise on a single node.
export OMPI_MCA_btl=${OMPI_MCA_btl:-self,vader,tcp}
export OMPI_MCA_pml=${OMPI_MCA_pml:-ob1}
export OMPI_MCA_rmaps_base_oversubscribe=${OMPI_MCA_rmaps_base_oversubscribe:-1}
# Do not pin ranks to cores: oneDNN picks its convolution kernels from the CPUs a process may
# use, so a pinned rank rounds features differently (~5e-7) from an unpinned one, and outputs
# would depend on where a unit ran. Unpinned, they are bitwise identical (tests/it_extract.sh).
export OMPI_MCA_hwloc_base_binding_policy=${OMPI_MCA_hwloc_base_binding_policy:-none}
