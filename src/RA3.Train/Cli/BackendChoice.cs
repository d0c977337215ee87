using RA3.Kernels;
using RA3.Kernels.Ops;

namespace RA3.Train.Cli;

/// <summary>Creates the compute backend a command asks for with <c>--backend</c>, from <see cref="BackendCatalog"/>.</summary>
public static class BackendChoice
{
    /// <summary>A new backend of that name; a name not in the catalog, or one this machine cannot run, is a usage error of this command line.</summary>
    public static Backend Create(string name)
    {
        try
        {
            return BackendCatalog.Create(name);
        }
        catch (ArgumentException e)
        {
            throw new UsageException($"--backend: {e.Message}");
        }
        catch (InvalidOperationException e)
        {
            throw new UsageException($"--backend {name}: {e.Message}");
        }
    }
}
