using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace RA3.Train.Runs;

/// <summary>
/// An append-only record of finished work, key → JSON value, one line per entry, flushed as each is
/// added: what an interrupted command (a kill, or a stop signal) keeps, so that the same command
/// again does only the rest. Keys are content hashes (<see cref="KeyOf"/>) of everything the result
/// depends on, so an entry can only be reused for the same work. A kill can cut the last line short;
/// opening drops it (and truncates the file there, so the next entry starts on a line of its own).
/// A malformed line before the last is corruption and named with its file and line.
/// </summary>
public sealed class Journal : IDisposable
{
    private readonly Dictionary<string, JsonNode> entries = new(StringComparer.Ordinal);
    private readonly StreamWriter writer;
    private readonly Lock gate = new();

    private Journal(string path, StreamWriter writer)
    {
        Path = path;
        this.writer = writer;
    }

    /// <summary>The journal's file.</summary>
    public string Path { get; }

    /// <summary>Entries held (read at opening plus added since).</summary>
    public int Count
    {
        get
        {
            lock (gate)
            {
                return entries.Count;
            }
        }
    }

    /// <summary>Entries read at opening: the work an earlier, interrupted run finished.</summary>
    public int Recovered { get; private set; }

    /// <summary>SHA-256 (hex) of <paramref name="parts"/>, each length-prefixed so that no two different lists share a key.</summary>
    public static string KeyOf(params string[] parts)
    {
        ArgumentNullException.ThrowIfNull(parts);
        var text = new StringBuilder();
        foreach (string part in parts)
        {
            text.Append(part.Length).Append(':').Append(part);
        }

        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }

    /// <summary>Opens (or creates) the journal at <paramref name="path"/>, reading what it holds.</summary>
    public static Journal Open(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var recovered = new List<(string Key, JsonNode Value)>();
        if (File.Exists(path))
        {
            byte[] bytes = File.ReadAllBytes(path);
            int complete = Array.LastIndexOf(bytes, (byte)'\n') + 1;  // a kill can leave a torn last line
            string[] lines = Encoding.UTF8.GetString(bytes, 0, complete).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            for (int i = 0; i < lines.Length; i++)
            {
                recovered.Add(Parse(lines[i], path, i + 1));
            }

            if (complete < bytes.Length)
            {
                using var truncate = new FileStream(path, FileMode.Open, FileAccess.Write);
                truncate.SetLength(complete);
            }
        }

        var journal = new Journal(path, new StreamWriter(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read), new UTF8Encoding(false)) { AutoFlush = true });
        foreach (var (key, value) in recovered)
        {
            journal.entries[key] = value;
        }

        journal.Recovered = journal.entries.Count;
        return journal;
    }

    /// <summary>The value recorded under <paramref name="key"/>, if any.</summary>
    public bool TryGet(string key, out JsonNode value)
    {
        lock (gate)
        {
            if (entries.TryGetValue(key, out var found))
            {
                value = found.DeepClone();
                return true;
            }
        }

        value = null!;
        return false;
    }

    /// <summary>Records <paramref name="value"/> under <paramref name="key"/> and flushes it to the file; safe from several threads.</summary>
    public void Add(string key, JsonNode value)
    {
        ArgumentNullException.ThrowIfNull(value);
        string line = new JsonObject { ["key"] = key, ["value"] = value.DeepClone() }.ToJsonString();
        lock (gate)
        {
            writer.Write(line + "\n");
            entries[key] = value.DeepClone();
        }
    }

    /// <summary>Closes the file and deletes it: the work is done and its result written elsewhere.</summary>
    public void Delete()
    {
        Dispose();
        File.Delete(Path);
    }

    /// <summary>Closes the file.</summary>
    public void Dispose() => writer.Dispose();

    private static (string, JsonNode) Parse(string line, string path, int number)
    {
        try
        {
            if (JsonNode.Parse(line) is JsonObject { } o && o["key"]?.GetValue<string>() is { } key && o["value"] is { } value)
            {
                return (key, value.DeepClone());
            }
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or FormatException)
        {
        }

        throw new InvalidDataException($"{path}:{number}: not a journal entry ({{\"key\": …, \"value\": …}}); delete the file to start the work again");
    }
}
