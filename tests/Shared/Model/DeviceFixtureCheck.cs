using System.Globalization;
using System.Text.Json.Nodes;
using RA3.Kernels.Ops;
using RA3.Kernels.Tensors;
using RA3.Model.IO;

namespace RA3.Testing;

/// <summary>One output of one device-fixture case checked on a backend.</summary>
/// <param name="Case">The fixture's file name (op and case).</param>
/// <param name="Output">The output compared.</param>
/// <param name="Error">‖ours − reference‖ / ‖reference‖ (for an accumulated output: of what the op added).</param>
/// <param name="Tolerance">The bound the case's op has on this backend.</param>
internal sealed record DeviceFixtureResult(string Case, string Output, double Error, double Tolerance)
{
    /// <summary>Whether the error is finite and within the tolerance.</summary>
    public bool Pass => double.IsFinite(Error) && Error <= Tolerance;
}

/// <summary>
/// The op tests' cases as files, for a machine without TorchSharp (the GPU machine, whose libtorch
/// is more than can be carried there): each fixture (<c>DeviceFixtureCases</c> writes them here,
/// from TorchSharp float64) holds an op's name and scalar settings, its inputs (<c>in.*</c>, int
/// <c>int.*</c>), the starting contents of its outputs (<c>start.*</c>) and the float64 reference
/// of each output: <c>out.*</c> the whole output, <c>added.*</c> what an accumulating op (the
/// backward ops) must add to its start. This side runs each case's op on a backend and compares. No TorchSharp here: it
/// travels with RA3.GpuCheck.
/// </summary>
internal static class DeviceFixtureCheck
{
    /// <summary>
    /// Runs every fixture of <paramref name="folder"/> on <paramref name="backend"/>; the tolerance
    /// of a case is <paramref name="tolerance"/>(op, case name) (float32 kernels 1e-5, TF32 GEMMs and
    /// bf16 tensor-core kernels wider: the device's own statement, by the path the case takes).
    /// </summary>
    public static List<DeviceFixtureResult> Run(Backend backend, string folder, Func<string, string, double> tolerance)
    {
        var results = new List<DeviceFixtureResult>();
        foreach (string path in Directory.GetFiles(folder, "*.safetensors").Order(StringComparer.Ordinal))
        {
            using var file = SafeTensorsFile.Open(path);
            string op = file.Metadata.TryGetValue("op", out string? o) ? o : throw new InvalidDataException($"{path}: no 'op' in the metadata");
            var settings = JsonNode.Parse(file.Metadata.GetValueOrDefault("settings") ?? "{}")!.AsObject();
            var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            try
            {
                foreach (var info in file.Tensors)
                {
                    var t = info.DType is "I32" or "I64" ? backend.FromArray(file.ReadInts(info.Name), info.Shape) : backend.FromArray(file.ReadFloats(info.Name), info.Shape);
                    tensors[info.Name] = t;
                }

                // Outputs the op writes: their starting contents, else NaN, so an element the op never
                // writes fails. A reference is out.X (the whole output) or added.X (what the op adds to start.X).
                var references = file.Tensors.Select(i => (Info: i, Role: Role(i.Name))).Where(r => r.Role is not null).ToList();
                foreach (var (info, role) in references)
                {
                    string name = info.Name[(role!.Length + 1)..];
                    tensors[name] = tensors.TryGetValue("start." + name, out var start) ? Copy(backend, start)
                        : role == Added ? throw new InvalidDataException($"{path}: '{info.Name}' has no 'start.{name}' to add to")
                        : backend.FromArray(Enumerable.Repeat(float.NaN, checked((int)info.Count)).ToArray(), info.Shape);
                }

                Invoke(backend, op, settings, tensors, path);
                foreach (var (info, role) in references)
                {
                    string name = info.Name[(role!.Length + 1)..];
                    float[] got = tensors[name].ToFloatArray(), want = file.ReadFloats(info.Name);
                    float[]? start = role == Added ? tensors["start." + name].ToFloatArray() : null;
                    results.Add(new DeviceFixtureResult(Path.GetFileNameWithoutExtension(path), name, Error(got, start, want), tolerance(op, Path.GetFileNameWithoutExtension(path))));
                }
            }
            finally
            {
                foreach (var t in tensors.Values)
                {
                    t.Dispose();
                }
            }
        }

        return results;
    }

    private const string Whole = "out", Added = "added";

    // The role of a reference tensor by its prefix, or null for an input or a start.
    private static string? Role(string tensor) =>
        tensor.StartsWith(Whole + ".", StringComparison.Ordinal) ? Whole : tensor.StartsWith(Added + ".", StringComparison.Ordinal) ? Added : null;

    private static Tensor Copy(Backend b, Tensor t)
    {
        var copy = b.Empty(t.DType, [.. t.Shape.Dims]);
        b.Convert(t, copy);
        return copy;
    }

    // ‖got − start − want‖ / ‖want‖ for an accumulated output, ‖got − want‖ / ‖want‖ otherwise (NaN anywhere fails).
    private static double Error(float[] got, float[]? start, float[] want)
    {
        double num = 0, den = 0;
        for (int i = 0; i < want.Length; i++)
        {
            double d = got[i] - (start is null ? 0.0 : start[i]) - want[i];
            num += d * d;
            den += (double)want[i] * want[i];
        }

        return Math.Sqrt(num / Math.Max(den, 1e-300));
    }

    private static void Invoke(Backend b, string op, JsonObject s, Dictionary<string, Tensor> t, string path)
    {
        Tensor In(string name) => t.TryGetValue("in." + name, out var x) ? x : t.TryGetValue("int." + name, out var y) ? y : throw new InvalidDataException($"{path}: {op} needs input '{name}'");
        Tensor? Opt(string name) => t.GetValueOrDefault("in." + name) ?? t.GetValueOrDefault("int." + name);
        Tensor Out(string name) => t.TryGetValue(name, out var x) ? x : throw new InvalidDataException($"{path}: {op} needs output '{name}'");
        float F(string name) => s[name]?.GetValue<float>() ?? throw new InvalidDataException($"{path}: {op} needs setting '{name}'");
        int I(string name) => s[name]?.GetValue<int>() ?? 0;
        bool Flag(string name) => s[name]?.GetValue<bool>() ?? false;
        switch (op)
        {
            case nameof(Backend.Gemm):
                b.Gemm(In("a"), Flag("transA"), In("b"), Flag("transB"), Out("c"), F("alpha"), F("beta"), Opt("bias"));
                break;
            case nameof(Backend.BiasBackward):
                b.BiasBackward(In("dOut"), Out("dBias"));
                break;
            case nameof(Backend.LayerNorm):
                b.LayerNorm(In("x"), In("weight"), Opt("bias"), Out("y"), Out("mean"), Out("rstd"), F("eps"));
                break;
            case nameof(Backend.LayerNormBackward):
                b.LayerNormBackward(In("x"), In("weight"), In("mean"), In("rstd"), In("dy"), Out("dx"), Out("dWeight"), t.ContainsKey("dBias") ? Out("dBias") : null);
                break;
            case nameof(Backend.RmsNorm):
                b.RmsNorm(In("x"), In("weight"), Out("y"), Out("rstd"), F("eps"));
                break;
            case nameof(Backend.RmsNormBackward):
                b.RmsNormBackward(In("x"), In("weight"), In("rstd"), In("dy"), Out("dx"), Out("dWeight"));
                break;
            case nameof(Backend.AddRmsNorm):
                b.AddRmsNorm(In("a"), In("b"), In("weight"), Out("sum"), Out("y"), Out("rstd"), F("eps"));
                break;
            case nameof(Backend.AddLayerNorm):
                b.AddLayerNorm(In("a"), In("b"), In("weight"), Opt("bias"), Out("sum"), Out("y"), Out("mean"), Out("rstd"), F("eps"));
                break;
            case nameof(Backend.Rope):
                b.Rope(In("x"), In("positions"), In("invFreq"), Out("y"));
                break;
            case nameof(Backend.SwiGlu):
                b.SwiGlu(In("gate"), In("up"), Out("y"));
                break;
            case nameof(Backend.FlashAttention):
                b.FlashAttention(In("q"), In("k"), In("v"), Opt("lengths"), Out("output"), Out("lse"), I("window"));
                break;
            case nameof(Backend.FlashAttentionBackward):
                b.FlashAttentionBackward(In("q"), In("k"), In("v"), Opt("lengths"), In("output"), In("lse"), In("dOutput"), Out("dq"), Out("dk"), Out("dv"), I("window"));
                break;
            case nameof(Backend.SegmentScores):
                b.SegmentScores(In("h"), In("w"), In("targets"), In("lineIds"), Out("scores"), Out("lse"));
                break;
            case nameof(Backend.SegmentScoresBackward):
                b.SegmentScoresBackward(In("h"), In("w"), In("targets"), In("lineIds"), In("lse"), In("dScores"), Out("dH"), Out("dW"));
                break;
            case nameof(Backend.ElboForwardBackward):
                b.ElboForwardBackward(In("seg"), In("priorThink"), F("priorAct"), In("lengths"), I("maxSpan"), Out("logZ"), Out("thinkPosterior"), Out("lineMarginals"));
                break;
            default:
                throw new InvalidDataException($"{path}: no fixture runner for op '{op}'");
        }
    }

    /// <summary>Formats <paramref name="results"/> one line each, failures marked.</summary>
    public static IEnumerable<string> Lines(IEnumerable<DeviceFixtureResult> results) =>
        results.Select(r => string.Create(CultureInfo.InvariantCulture, $"{r.Case + " " + r.Output,-56} rel.err {r.Error:E3}  (tol {r.Tolerance:E0})  {(r.Pass ? "ok" : "FAIL")}"));
}
