using System.Reflection;
using RA3.Kernels;

namespace RA3.Train.Cli;

/// <summary><c>ra3 info</c>: what this build and this machine offer.</summary>
public static class InfoCommand
{
    /// <summary>Writes the report.</summary>
    public static void Print(TextWriter o)
    {
        string version = typeof(InfoCommand).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "?";
        o.WriteLine($"ra3 {version} on .NET {Environment.Version}, {Environment.OSVersion}, {Environment.ProcessorCount} cores");
        foreach (var line in BackendInfo.Describe())
        {
            o.WriteLine(line);
        }

        using var sandbox = Sandbox.Sandbox.Create();
        o.WriteLine(sandbox.Description);
    }
}
