using RA3.Kernels;
using RA3.Kernels.Ops;

namespace RA3.Train.Runs;

/// <summary>Creates the compute backend a run's <c>backend</c> setting names, from <see cref="BackendCatalog"/>.</summary>
public static class BackendChoice
{
    /// <summary>A new backend of that name; a name not in the catalog, or one this machine cannot run, is a <see cref="SettingsException"/> of the <c>backend</c> option.</summary>
    public static Backend Create(string name)
    {
        try
        {
            return BackendCatalog.Create(name);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            throw new SettingsException("backend", e.Message);
        }
    }
}
