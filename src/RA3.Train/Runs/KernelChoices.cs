using RA3.Kernels.Cpu;
using System.Text;
using RA3.Model.IO;
using RA3.Train.Distributed;

namespace RA3.Train.Runs;

/// <summary>
/// The kernel variants a run computes with, recorded in its folder (<c>kernels.txt</c>) and taken
/// again when it resumes: the GEMM's tuning is measured per processor, and its K slice sets the
/// order of each element's sum, so a resume on a retuned machine would not be bit-identical
/// without the record.
/// </summary>
public static class KernelChoices
{
    /// <summary>The record's file name in a run folder.</summary>
    public const string FileName = "kernels.txt";

    /// <summary>
    /// Makes the process compute as the run in <paramref name="runDir"/> did: a recorded tuning is
    /// set (said through <paramref name="log"/> when it differs from this machine's), a new run records
    /// the process's. A recorded tile this processor cannot run is said and replaced. Under
    /// mpirun rank 0 alone reads or writes the record, and every rank takes rank 0's tuning
    /// (where its processor can run it).
    /// </summary>
    public static void Pin(string runDir, Action<string> log, DataParallel parallel)
    {
        ArgumentNullException.ThrowIfNull(parallel);
        parallel.RootWrites(() => Pin(runDir, log));
        if (parallel.Size == 1)
        {
            return;
        }

        // Every rank computes as rank 0 does, so a replica's forward is the same on every rank.
        var chosen = GemmTuning.Parse(Encoding.UTF8.GetString(parallel.Group.AllGather(Encoding.UTF8.GetBytes(GemmKernel.Tuning.ToString()))[0]));
        if (chosen != GemmKernel.Tuning && chosen.Runs)
        {
            GemmKernel.Tuning = chosen;
        }
    }

    /// <summary>
    /// Makes the process compute as the run in <paramref name="runDir"/> did: a recorded tuning is
    /// set (said through <paramref name="log"/> when it differs from this machine's), a new run records
    /// the process's. A recorded tile this processor cannot run is said and replaced.
    /// </summary>
    public static void Pin(string runDir, Action<string> log)
    {
        ArgumentNullException.ThrowIfNull(log);
        string path = Path.Combine(runDir, FileName);
        if (File.Exists(path))
        {
            GemmTuning recorded;
            try
            {
                recorded = GemmTuning.Parse(File.ReadLines(path).FirstOrDefault(l => l.StartsWith("gemm ", StringComparison.Ordinal))?["gemm ".Length..] ?? string.Empty);
            }
            catch (FormatException e)
            {
                throw new InvalidDataException($"{path}: {e.Message}", e);
            }

            if (recorded == GemmKernel.Tuning)
            {
                return;
            }

            if (!recorded.Runs)
            {
                log($"{path}: this processor cannot run the recorded GEMM tuning ({recorded}); using {GemmKernel.Tuning}, so results differ from the run's in the last bits");
                return;
            }

            log($"GEMM tuning {recorded}, as recorded in {path} (this machine's own: {GemmKernel.Tuning})");
            GemmKernel.Tuning = recorded;
            return;
        }

        Directory.CreateDirectory(runDir);
        AtomicFile.WriteAllText(path, $"gemm {GemmKernel.Tuning}\n");
    }
}
