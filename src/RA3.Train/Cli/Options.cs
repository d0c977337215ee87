using System.Globalization;

namespace RA3.Train.Cli;

/// <summary>
/// <c>--name value</c> and <c>--flag</c> options of one command. Every option must be read or
/// declared; <see cref="Finish"/> rejects the rest, so a misspelt option is an error, not a silent default.
/// </summary>
public sealed class Options
{
    private readonly Dictionary<string, string?> values = new(StringComparer.Ordinal);
    private readonly HashSet<string> used = new(StringComparer.Ordinal);

    /// <summary>Parses <paramref name="args"/> (the command name already removed).</summary>
    public Options(IEnumerable<string> args, IReadOnlySet<string> flags)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(flags);
        var list = args.ToList();
        for (int i = 0; i < list.Count; i++)
        {
            string a = list[i];
            if (!a.StartsWith("--", StringComparison.Ordinal) || a.Length == 2)
            {
                throw new UsageException($"unexpected argument '{a}' (options are --name value)");
            }

            string name = a[2..];
            if (flags.Contains(name))
            {
                values[name] = null;
            }
            else if (i + 1 < list.Count)
            {
                values[name] = list[++i];
            }
            else
            {
                throw new UsageException($"option --{name} needs a value");
            }
        }
    }

    /// <summary>Whether the flag or option was given.</summary>
    public bool Has(string name)
    {
        used.Add(name);
        return values.ContainsKey(name);
    }

    /// <summary>A string option, or <paramref name="fallback"/>.</summary>
    public string? String(string name, string? fallback = null) => Has(name) ? values[name] : fallback;

    /// <summary>An integer option.</summary>
    public int Int(string name, int fallback) => Parse(name, fallback, s => int.Parse(s, NumberStyles.Integer, CultureInfo.InvariantCulture));

    /// <summary>A float option.</summary>
    public float Float(string name, float fallback) => Parse(name, fallback, s => float.Parse(s, NumberStyles.Float, CultureInfo.InvariantCulture));

    /// <summary>Throws for any option no one asked about.</summary>
    public void Finish()
    {
        var unknown = values.Keys.Where(k => !used.Contains(k)).ToList();
        if (unknown.Count > 0)
        {
            throw new UsageException($"unknown option{(unknown.Count > 1 ? "s" : string.Empty)}: {string.Join(", ", unknown.Select(u => "--" + u))}");
        }
    }

    private T Parse<T>(string name, T fallback, Func<string, T> parse)
    {
        if (!Has(name))
        {
            return fallback;
        }

        try
        {
            return parse(values[name]!);
        }
        catch (FormatException)
        {
            throw new UsageException($"--{name}: '{values[name]}' is not a valid {typeof(T).Name.ToLowerInvariant()}");
        }
        catch (OverflowException)
        {
            throw new UsageException($"--{name}: '{values[name]}' is out of range");
        }
    }
}

/// <summary>Bad command-line usage: reported with the usage text and exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);
