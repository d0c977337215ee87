using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;

namespace RA3.Train.Data;

/// <summary>
/// The embedded default corpus: the functions (and methods, dedented) of the Python standard
/// library of this machine's <c>python3</c> — the interpreter the evaluation sandbox runs anyway —
/// cut out by indentation, deduplicated, written once to a jsonl cache.
/// </summary>
public static class StdlibCorpus
{
    /// <summary>Builds (or reuses) <paramref name="path"/> and returns it.</summary>
    public static string Ensure(string path)
    {
        if (File.Exists(path))
        {
            return path;
        }

        string stdlib = FindStdlib();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var lines = new StringBuilder();
        int count = 0;
        foreach (string file in Directory.EnumerateFiles(stdlib, "*.py", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            string rel = Path.GetRelativePath(stdlib, file);
            if (rel.StartsWith("site-packages", StringComparison.Ordinal) || rel.Contains("test", StringComparison.Ordinal) || new FileInfo(file).Length > 1_000_000)
            {
                continue;
            }

            string text;
            try
            {
                text = File.ReadAllText(file);
            }
            catch (IOException)
            {
                continue;
            }

            foreach (string function in Functions(text))
            {
                if (seen.Add(function))
                {
                    lines.Append(new JsonObject { ["text"] = function, ["source"] = rel }.ToJsonString()).Append('\n');
                    count++;
                }
            }
        }

        if (count == 0)
        {
            throw new InvalidDataException($"no Python functions found under {stdlib}");
        }

        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        RA3.Model.IO.AtomicFile.WriteAllText(path, lines.ToString());
        return path;
    }

    /// <summary>
    /// Each <c>def</c> block (with its decorators) of a Python file, dedented to column 0; blocks
    /// of 3 to 120 lines, so the corpus is whole functions of ordinary size.
    /// </summary>
    public static IEnumerable<string> Functions(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        string[] lines = source.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            string trimmed = lines[i].TrimStart(' ');
            if (!(trimmed.StartsWith("def ", StringComparison.Ordinal) || trimmed.StartsWith("async def ", StringComparison.Ordinal)))
            {
                continue;
            }

            int indent = lines[i].Length - trimmed.Length, start = i;
            while (start > 0 && lines[start - 1].TrimStart(' ').StartsWith('@') && Indent(lines[start - 1]) == indent)
            {
                start--;
            }

            int end = i + 1;
            while (end < lines.Length && (lines[end].Trim().Length == 0 || Indent(lines[end]) > indent))
            {
                end++;
            }

            while (end > i + 1 && lines[end - 1].Trim().Length == 0)
            {
                end--;
            }

            if (end - start is < 3 or > 120 || lines[start..end].Any(l => l.Contains('\t', StringComparison.Ordinal)))
            {
                continue;
            }

            yield return string.Join('\n', lines[start..end].Select(l => l.Length >= indent ? l[indent..] : l.TrimStart(' '))) + "\n";
        }
    }

    private static int Indent(string line) => line.Length - line.TrimStart(' ').Length;

    private static string FindStdlib()
    {
        try
        {
            using var p = Process.Start(new ProcessStartInfo("python3", ["-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
            string output = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit();
            return p.ExitCode == 0 && Directory.Exists(output) ? output : throw new InvalidOperationException($"python3 printed '{output}' as its standard library, which is not a folder");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException("the default corpus is built from python3's standard library, and python3 is not on PATH (pass --data instead)", e);
        }
    }
}
