using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using RA3.Model.IO;

namespace RA3.Train.Runs;

/// <summary>
/// The options a settings record declares with <see cref="OptionAttribute"/>, and the check of a
/// settings value against them — run by the command line after parsing and by every trainer
/// before it starts, so settings built in code (the demo's) are held to the same bounds.
/// </summary>
public static class Declared
{
    /// <summary>The declared options of <typeparamref name="T"/> in declaration order, nested records' options included (<c>prefix.name</c>).</summary>
    public static IReadOnlyList<DeclaredOption> Options<T>() => Of(typeof(T), string.Empty, [], []);

    /// <summary>Throws <see cref="SettingsException"/> naming the first option whose value its declaration does not allow.</summary>
    public static void Validate<T>(T settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        foreach (var d in Options<T>())
        {
            var option = d.Option;
            object? value = d.Get(settings);
            if (value is null)
            {
                if (option.Required)
                {
                    throw new SettingsException(d.Name, "is required");
                }

                continue;
            }

            if (option.Choices is { } choices && value is string s && !choices.Split('|').Contains(s, StringComparer.Ordinal))
            {
                throw new SettingsException(d.Name, $"'{s}' is not one of {choices.Replace("|", ", ", StringComparison.Ordinal)}");
            }

            if (value is IConvertible number && value is not string and not bool)
            {
                double x = number.ToDouble(CultureInfo.InvariantCulture);
                bool low = !double.IsNaN(option.Min) && (option.MinExclusive ? x <= option.Min : x < option.Min);
                bool high = !double.IsNaN(option.Max) && (option.MaxExclusive ? x >= option.Max : x > option.Max);
                if (!double.IsFinite(x) || low || high)
                {
                    string min = option.MinExclusive ? $"above {Text(option.Min)}" : $"at least {Text(option.Min)}";
                    string max = option.MaxExclusive ? $"below {Text(option.Max)}" : $"at most {Text(option.Max)}";
                    string range = (double.IsNaN(option.Min), double.IsNaN(option.Max)) switch
                    {
                        (false, false) => $"{min} and {max}",
                        (false, true) => min,
                        (true, false) => max,
                        _ => "finite",
                    };
                    throw new SettingsException(d.Name, $"{Text(x)} must be {range}");
                }
            }
        }
    }

    /// <summary>The name of the resolved config a run writes into its folder, and <c>--config</c> reads back.</summary>
    public const string ConfigFileName = "ra3-config.json";

    /// <summary>Every saved option's value, keyed by option name: what <c>--config</c> reads.</summary>
    public static string ConfigJson<T>(T settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var json = new JsonObject();
        foreach (var d in Options<T>().Where(d => d.Option.InConfig))
        {
            json[d.Name] = JsonSerializer.SerializeToNode(d.Get(settings), d.Type);
        }

        return json.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>Writes <see cref="ConfigJson"/> into <paramref name="folder"/> atomically, so the run can be repeated with <c>--config</c>.</summary>
    public static void Save<T>(T settings, string folder)
    {
        Directory.CreateDirectory(folder);
        AtomicFile.WriteAllText(Path.Combine(folder, ConfigFileName), ConfigJson(settings));
    }

    private static List<DeclaredOption> Of(Type type, string prefix, PropertyInfo[] path, HashSet<string> except)
    {
        var found = new List<DeclaredOption>();
        foreach (var p in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (p.GetCustomAttribute<OptionAttribute>() is { } option && !except.Contains(option.Name))
            {
                found.Add(new DeclaredOption(prefix + option.Name, option, [.. path, p]));
            }
            else if (p.GetCustomAttribute<NestedOptionsAttribute>() is { } nested)
            {
                // Without a prefix the nested options join the parent's own, and what the parent hides stays hidden.
                HashSet<string> hidden = [.. nested.Except.Split('|', StringSplitOptions.RemoveEmptyEntries)];
                if (nested.Prefix.Length == 0)
                {
                    hidden.UnionWith(except);
                }

                found.AddRange(Of(p.PropertyType, nested.Prefix.Length == 0 ? prefix : prefix + nested.Prefix + ".", [.. path, p], hidden));
            }
        }

        return found;
    }

    private static string Text(double x) => x.ToString("G6", CultureInfo.InvariantCulture);
}

/// <summary>One declared option: its full name, its declaration, and the properties that lead to it from the settings record.</summary>
/// <param name="Name">The option's name (<c>prefix.name</c> inside a nested record).</param>
/// <param name="Option">Its declaration.</param>
/// <param name="Path">The property chain from the record to the value.</param>
public sealed record DeclaredOption(string Name, OptionAttribute Option, IReadOnlyList<PropertyInfo> Path)
{
    /// <summary>The value's type.</summary>
    public Type Type => Path[^1].PropertyType;

    /// <summary>The value in <paramref name="settings"/>.</summary>
    public object? Get(object settings)
    {
        object? value = settings;
        foreach (var p in Path)
        {
            value = p.GetValue(value);
        }

        return value;
    }

    /// <summary>Sets the value in <paramref name="settings"/> (a record this parse owns, nested records included).</summary>
    public void Set(object settings, object? value)
    {
        object owner = settings;
        foreach (var p in Path.Take(Path.Count - 1))
        {
            owner = p.GetValue(owner)!;
        }

        Path[^1].SetValue(owner, value);
    }
}
