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
    /// <summary>The declared options of <typeparamref name="T"/>, in declaration order.</summary>
    public static IReadOnlyList<(PropertyInfo Property, OptionAttribute Option)> Options<T>() =>
        [.. typeof(T).GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Select(p => (Property: p, Option: p.GetCustomAttribute<OptionAttribute>()!))
            .Where(d => d.Option is not null)];

    /// <summary>Throws <see cref="SettingsException"/> naming the first option whose value its declaration does not allow.</summary>
    public static void Validate<T>(T settings)
    {
        foreach (var (property, option) in Options<T>())
        {
            object? value = property.GetValue(settings);
            if (value is null)
            {
                if (option.Required)
                {
                    throw new SettingsException(option.Name, "is required");
                }

                continue;
            }

            if (option.Choices is { } choices && value is string s && !choices.Split('|').Contains(s, StringComparer.Ordinal))
            {
                throw new SettingsException(option.Name, $"'{s}' is not one of {choices.Replace("|", ", ", StringComparison.Ordinal)}");
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
                    throw new SettingsException(option.Name, $"{Text(x)} must be {range}");
                }
            }
        }
    }

    /// <summary>The name of the resolved config a run writes into its folder, and <c>--config</c> reads back.</summary>
    public const string ConfigFileName = "ra3-config.json";

    /// <summary>Every saved option's value, keyed by option name: what <c>--config</c> reads.</summary>
    public static string ConfigJson<T>(T settings)
    {
        var json = new JsonObject();
        foreach (var (property, option) in Options<T>().Where(d => d.Option.InConfig))
        {
            json[option.Name] = JsonSerializer.SerializeToNode(property.GetValue(settings), property.PropertyType);
        }

        return json.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>Writes <see cref="ConfigJson"/> into <paramref name="folder"/> atomically, so the run can be repeated with <c>--config</c>.</summary>
    public static void Save<T>(T settings, string folder)
    {
        Directory.CreateDirectory(folder);
        AtomicFile.WriteAllText(Path.Combine(folder, ConfigFileName), ConfigJson(settings));
    }

    private static string Text(double x) => x.ToString("G6", CultureInfo.InvariantCulture);
}
