using System.Globalization;
using System.Text;
using System.Text.Json;
using RA3.Model.IO;
using RA3.Train.Runs;

namespace RA3.Train.Cli;

/// <summary>
/// A settings record's <see cref="OptionAttribute"/>s as a command line, a usage text and a config
/// file: <c>--config FILE</c> (a JSON object keyed by option names, as <see cref="Declared.Save"/>
/// writes it into every run folder) is read first, then the command line overrides it; every value
/// is checked against its declaration, so a wrong one names the option and the file.
/// </summary>
public static class SettingsCommandLine
{
    /// <summary>
    /// The settings <paramref name="args"/> describe, and which of the command's own
    /// <paramref name="commandFlags"/> (not settings, such as <c>resume</c>) were given.
    /// </summary>
    public static (T Settings, IReadOnlySet<string> Flags) Parse<T>(IEnumerable<string> args, params string[] commandFlags)
        where T : new() => Parse(args, () => new T(), commandFlags);

    /// <summary>
    /// As <see cref="Parse{T}(IEnumerable{string}, string[])"/>, starting from <paramref name="start"/>'s
    /// values instead of the declared defaults (a preset); it must return a fresh record, nested
    /// records included, since the options are written into it.
    /// </summary>
    public static (T Settings, IReadOnlySet<string> Flags) Parse<T>(IEnumerable<string> args, Func<T> start, params string[] commandFlags)
    {
        ArgumentNullException.ThrowIfNull(start);
        var declared = Declared.Options<T>();
        var flags = new HashSet<string>(declared.Where(d => d.Type == typeof(bool)).Select(d => d.Name).Concat(commandFlags), StringComparer.Ordinal);
        var o = new Options(args, flags);
        object settings = start()!;
        if (o.String("config") is { } config)
        {
            ApplyConfig(settings, declared, config);
        }

        foreach (var d in declared)
        {
            if (d.Type == typeof(bool))
            {
                if (o.Has(d.Name))
                {
                    d.Set(settings, true);
                }
            }
            else if (o.String(d.Name) is { } text)
            {
                d.Set(settings, Convert(d, text, $"--{d.Name}"));
            }
        }

        var given = commandFlags.Where(o.Has).ToHashSet(StringComparer.Ordinal);
        o.Finish();
        Declared.Validate((T)settings);
        return ((T)settings, given);
    }

    /// <summary>
    /// The usage text: <paramref name="synopsis"/>, then every option with its help and default,
    /// then <c>--config</c> and the command's own lines (<paramref name="extra"/>).
    /// </summary>
    public static string Usage<T>(string synopsis, params (string Option, string Help)[] extra)
        where T : new()
    {
        var defaults = new T();
        var rows = Declared.Options<T>().Select(d => (
            Left: $"--{d.Name}{(d.Type == typeof(bool) ? string.Empty : " " + Placeholder(d))}",
            Right: d.Option.Help + Default(d.Get(defaults!))))
            .Concat([(Left: "--config FILE", Right: $"settings from a JSON file (a run folder's {Declared.ConfigFileName}); options given here override it")])
            .Concat(extra.Select(e => (Left: e.Option, Right: e.Help)))
            .ToList();
        int width = rows.Max(r => r.Left.Length) + 2;
        var text = new StringBuilder(synopsis.TrimEnd()).Append("\n\n");
        foreach (var (left, right) in rows)
        {
            text.Append("  ").Append(left.PadRight(width)).Append(right).Append('\n');
        }

        return text.ToString().TrimEnd();
    }

    private static void ApplyConfig(object settings, IReadOnlyList<DeclaredOption> declared, string path)
    {
        var json = JsonFile.ReadObject(path);
        foreach (var (key, node) in json)
        {
            var match = declared.FirstOrDefault(d => d.Name == key) ?? throw new UsageException($"{path}: unknown setting '{key}'");
            try
            {
                match.Set(settings, node?.Deserialize(match.Type));
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
            {
                throw new UsageException($"{path}: setting '{key}': {node?.ToJsonString()} is not a valid {TypeName(match.Type)}");
            }
        }
    }

    private static object? Convert(DeclaredOption d, string text, string where)
    {
        var type = Nullable.GetUnderlyingType(d.Type) ?? d.Type;
        try
        {
            // Each branch boxed on its own: a conditional chain would unify the numbers to double.
            if (type == typeof(string))
            {
                return text;
            }

            if (type == typeof(int))
            {
                return int.Parse(text, NumberStyles.Integer, CultureInfo.InvariantCulture);
            }

            if (type == typeof(long))
            {
                return long.Parse(text, NumberStyles.Integer, CultureInfo.InvariantCulture);
            }

            if (type == typeof(ulong))
            {
                return ulong.Parse(text, NumberStyles.Integer, CultureInfo.InvariantCulture);
            }

            if (type == typeof(float))
            {
                return float.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);
            }

            return type == typeof(double)
                ? double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture)
                : throw new InvalidOperationException($"option --{d.Name} has an unsupported type {type.Name}");
        }
        catch (Exception e) when (e is FormatException or OverflowException)
        {
            throw new UsageException($"{where}: '{text}' is not a valid {TypeName(d.Type)}");
        }
    }

    private static string Placeholder(DeclaredOption d) =>
        d.Option.Value ?? d.Option.Choices ?? (Nullable.GetUnderlyingType(d.Type) ?? d.Type) switch
        {
            var t when t == typeof(int) || t == typeof(long) || t == typeof(ulong) => "N",
            var t when t == typeof(float) || t == typeof(double) => "X",
            _ => "VALUE",
        };

    private static string Default(object? value) => value switch
    {
        null or false => string.Empty,
        true => "  [on]",
        float or double => $"  [{Number(System.Convert.ToDouble(value, CultureInfo.InvariantCulture))}]",
        IFormattable f => $"  [{f.ToString(null, CultureInfo.InvariantCulture)}]",
        _ => $"  [{value}]",
    };

    // 5e-05 rather than 5E-05; plain decimals otherwise.
    private static string Number(double x) =>
        x != 0 && Math.Abs(x) < 1e-3 ? x.ToString("0.###e-0", CultureInfo.InvariantCulture) : x.ToString("0.######", CultureInfo.InvariantCulture);

    private static string TypeName(Type type) =>
        (Nullable.GetUnderlyingType(type) ?? type) switch
        {
            var t when t == typeof(int) || t == typeof(long) || t == typeof(ulong) => "integer",
            var t when t == typeof(float) || t == typeof(double) => "number",
            var t when t == typeof(bool) => "true or false",
            _ => "string",
        };

}
