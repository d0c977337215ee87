namespace RA3.Testing;

/// <summary>
/// Locates the project's shared folder (<c>../shared</c> beside the repository, as on developer
/// machines and in CI; <c>RA3_SHARED</c> overrides). A test that needs it and does not find it
/// fails and says where it looked — never skips.
/// </summary>
internal static class Fixtures
{
    /// <summary>The repository root (the folder holding RA3.sln).</summary>
    public static string RepoRoot { get; } = FindRepoRoot();

    /// <summary>The shared folder.</summary>
    public static string Shared
    {
        get
        {
            string path = Environment.GetEnvironmentVariable("RA3_SHARED") is { Length: > 0 } env ? env : Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared"));
            return Directory.Exists(path)
                ? path
                : throw new DirectoryNotFoundException($"the shared folder is missing: looked for {path} (set RA3_SHARED to its location)");
        }
    }

    /// <summary>A path under <c>shared/</c> that must exist.</summary>
    public static string SharedPath(params string[] parts)
    {
        string path = Path.Combine([Shared, .. parts]);
        return File.Exists(path) || Directory.Exists(path) ? path : throw new FileNotFoundException($"missing fixture {path}", path);
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "RA3.sln")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException($"no RA3.sln above {AppContext.BaseDirectory}");
    }
}
