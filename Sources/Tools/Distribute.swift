import Foundation
import Tensor
import Trainer
import DistributedMPI
import ZooBenchmark

/// The communicator for a run: MPI with `--distribute`, otherwise a single local rank.
///
/// `--distribute` outside mpirun (no OpenMPI/PMIx environment) runs as a single rank after a
/// warning, without touching MPI. Under mpirun the OpenMPI library is loaded at this point (zoo does
/// not link it), and when neither `VITZOO_NUM_THREADS` nor `OPENBLAS_NUM_THREADS` is set the cores
/// are divided between the ranks on this machine.
func makeCommunicator(distribute: Bool) throws -> Communicator {
    guard distribute else { return LocalCommunicator() }
    guard MPIRuntime.launchedByMPIRun else {
        FileHandle.standardError.write(Data("warning: --distribute given but not launched by mpirun: running as a single rank (world size 1). Start distributed runs with `mpirun -n N zoo train ... --distribute`.\n".utf8))
        return LocalCommunicator()
    }
    let communicator = try MPICommunicator()
    let env = ProcessInfo.processInfo.environment
    let local = MPIRuntime.localSize
    if local > 1, env["VITZOO_NUM_THREADS"] == nil, env["OPENBLAS_NUM_THREADS"] == nil, env["OMP_NUM_THREADS"] == nil {
        let perRank = max(1, ProcessInfo.processInfo.activeProcessorCount / local)
        BLASRuntime.setThreads(perRank)
        if communicator.rank == 0 {
            print("distributed: \(local) ranks on this machine share \(ProcessInfo.processInfo.activeProcessorCount) cores: \(perRank) thread(s) per rank (set OPENBLAS_NUM_THREADS to override)")
        }
    }
    if communicator.rank == 0 {
        print("distributed: OpenMPI (\(communicator.libraryPath)), \(communicator.worldSize) ranks, collective timeout \(Int(communicator.timeout)) s")
    }
    return communicator
}
