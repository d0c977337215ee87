using System.Globalization;

namespace RA3.Kernels.Distributed;

/// <summary>
/// How this process was started, read from the environment mpirun gives each rank (Open MPI's
/// <c>OMPI_COMM_WORLD_*</c>) before MPI is loaded: what sizes the CPU worker pool and the sandbox's
/// workers to a share of the host's cores, and picks a rank's GPU, without initialising anything.
/// A process not started by mpirun is a world of one.
/// </summary>
public static class Launch
{
    /// <summary>Whether mpirun started this process (Open MPI's per-rank variables are set).</summary>
    public static bool ByMpirun => Read("OMPI_COMM_WORLD_SIZE") is not null;

    /// <summary>This process's rank in the job (0 without mpirun).</summary>
    public static int WorldRank => Read("OMPI_COMM_WORLD_RANK") ?? 0;

    /// <summary>Ranks in the job (1 without mpirun).</summary>
    public static int WorldSize => Read("OMPI_COMM_WORLD_SIZE") ?? 1;

    /// <summary>This rank's index among the ranks of its host (0 without mpirun).</summary>
    public static int LocalRank => Read("OMPI_COMM_WORLD_LOCAL_RANK") ?? 0;

    /// <summary>Ranks on this host (1 without mpirun).</summary>
    public static int LocalSize => Math.Max(1, Read("OMPI_COMM_WORLD_LOCAL_SIZE") ?? 1);

    /// <summary>This host's cores divided among its ranks (at least one): each rank's default number of threads and sandbox workers.</summary>
    public static int CoresPerRank => Math.Max(1, Environment.ProcessorCount / LocalSize);

    private static int? Read(string name) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.None, CultureInfo.InvariantCulture, out int value) ? value : null;
}
