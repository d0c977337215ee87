using RA3.Model.IO;

namespace RA3.Train.Runs;

/// <summary>A run folder that remembers the settings it was made with, so resumed or cached stages always match them.</summary>
public static class RunFolder
{
    /// <summary>
    /// Creates <paramref name="folder"/> for the run whose settings are <paramref name="identity"/>
    /// (JSON), or accepts it when it already holds that run; throws when it holds another, naming both.
    /// </summary>
    public static void Claim(string folder, string identity)
    {
        ArgumentNullException.ThrowIfNull(identity);
        Directory.CreateDirectory(folder);
        string path = Path.Combine(folder, "settings.json"), formatPath = Path.Combine(folder, "format");
        if (File.Exists(path))
        {
            // A folder from before format versions has settings but no format file: format 1.
            int format = File.Exists(formatPath) && int.TryParse(File.ReadAllText(formatPath).Trim(), System.Globalization.CultureInfo.InvariantCulture, out int f) ? f : 1;
            if (format != FormatVersion.Current)
            {
                throw new NotSupportedException(FormatVersion.Refusal($"the run folder {folder}", format));
            }

            if (File.ReadAllText(path) != identity)
            {
                throw new InvalidOperationException($"{folder} holds a run with other settings:\n  saved: {File.ReadAllText(path)}\n  now:   {identity}\n(choose another --out, or delete it)");
            }
        }

        AtomicFile.WriteAllText(formatPath, FormatVersion.Current.ToString(System.Globalization.CultureInfo.InvariantCulture) + "\n");
        AtomicFile.WriteAllText(path, identity);
    }
}
