using System.Reflection;
using System.Runtime.InteropServices;
using RA3.Model.Generation;
using RA3.Model.Inference;
using RA3.Model.Scoring;

namespace RA3.CApi;

/// <summary>
/// The functions of <c>native/include/ra3_engine.h</c>, one export each; the header documents
/// them. Each checks its pointers and sizes, runs the engine's own code (what <c>ra3 score</c>,
/// the generator and the EM loop run) and reports through <see cref="Boundary"/>.
/// </summary>
public static unsafe class Exports
{
    private static readonly byte* Version = Boundary.Utf8(
        typeof(Exports).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "?");

    /// <summary>ra3_engine_version.</summary>
    [UnmanagedCallersOnly(EntryPoint = "ra3_engine_version")]
    public static byte* EngineVersion() => Version;

    /// <summary>ra3_engine_last_error.</summary>
    [UnmanagedCallersOnly(EntryPoint = "ra3_engine_last_error")]
    public static byte* LastError() => Boundary.LastError;

    /// <summary>ra3_engine_load.</summary>
    [UnmanagedCallersOnly(EntryPoint = "ra3_engine_load")]
    public static Status Load(byte* model, byte* tokenizer, byte* backend, nint* result) => Boundary.Run("ra3_engine_load", () =>
    {
        *Boundary.NotNull(result, "out") = 0;
        *result = Engine.Load(Boundary.String(model, "model"), tokenizer is null ? null : Boundary.String(tokenizer, "tokenizer"), backend is null ? null : Boundary.String(backend, "backend"));
    });

    /// <summary>ra3_engine_free.</summary>
    [UnmanagedCallersOnly(EntryPoint = "ra3_engine_free")]
    public static Status Free(nint model) => Boundary.Run("ra3_engine_free", () =>
    {
        if (model != 0)
        {
            Engine.Free(model);
        }
    });

    /// <summary>ra3_engine_model_info.</summary>
    [UnmanagedCallersOnly(EntryPoint = "ra3_engine_model_info")]
    public static Status ModelInfo(nint model, int* vocabSize, int* maxPositions) => Boundary.Run("ra3_engine_model_info", () => Engine.With(model, e =>
    {
        *Boundary.NotNull(vocabSize, "vocab_size") = e.Model.Config.VocabSize;
        *Boundary.NotNull(maxPositions, "max_positions") = e.Model.Config.MaxPositions;
    }));

    /// <summary>ra3_engine_tokenize.</summary>
    [UnmanagedCallersOnly(EntryPoint = "ra3_engine_tokenize")]
    public static Status Tokenize(nint model, byte* text, int* ids, int capacity, int* count) => Boundary.Run("ra3_engine_tokenize", () => Engine.With(model, e =>
    {
        int[] encoded = e.Tokenizer.Encode(Boundary.String(text, "text"));
        *Boundary.NotNull(count, "count") = encoded.Length;
        CopyOut(encoded, ids, capacity, "ids");
    }));

    /// <summary>ra3_engine_detokenize.</summary>
    [UnmanagedCallersOnly(EntryPoint = "ra3_engine_detokenize")]
    public static Status Detokenize(nint model, int* ids, int count, byte* text, int capacity, int* length) => Boundary.Run("ra3_engine_detokenize", () => Engine.With(model, e =>
    {
        byte[] bytes = [.. System.Text.Encoding.UTF8.GetBytes(e.Tokenizer.Decode(In(ids, count, 0, "ids"))), 0];
        *Boundary.NotNull(length, "length") = bytes.Length - 1;
        CopyOut(bytes, text, capacity, "text");
    }));

    /// <summary>ra3_engine_score.</summary>
    [UnmanagedCallersOnly(EntryPoint = "ra3_engine_score")]
    public static Status Score(nint model, int* ids, int count, float* logprobs, double* meanLoss) => Boundary.Run("ra3_engine_score", () => Engine.With(model, e =>
    {
        int[] input = In(ids, count, 2, "ids").ToArray();
        Boundary.NotNull(logprobs, "logprobs");
        Boundary.NotNull(meanLoss, "mean_loss");
        var scores = Scorer.Score(e.Model, input, 1, count, keepLogits: false);
        scores.LogProbs.CopyTo(new Span<float>(logprobs, count - 1));
        *meanLoss = scores.MeanLoss;
    }));

    /// <summary>ra3_engine_generate.</summary>
    [UnmanagedCallersOnly(EntryPoint = "ra3_engine_generate")]
    public static Status Generate(nint model, int* prompt, int promptCount, int maxNewTokens, float temperature, int topK, float topP, ulong seed, int* output, int* produced) => Boundary.Run("ra3_engine_generate", () => Engine.With(model, e =>
    {
        int[] input = In(prompt, promptCount, 1, "prompt").ToArray();
        if (maxNewTokens < 1)
        {
            throw new ArgumentException($"max_new_tokens = {maxNewTokens} must be at least 1");
        }

        Boundary.NotNull(output, "out");
        Boundary.NotNull(produced, "produced");
        var options = new SamplingOptions { MaxNewTokens = maxNewTokens, Temperature = temperature, TopK = topK, TopP = topP, Seed = seed };
        var sequence = new Generator(e.Model, e.Tokenizer).Generate([input], options)[0];
        sequence.Tokens.CopyTo(new Span<int>(output, maxNewTokens));
        *produced = sequence.Tokens.Length;
    }));

    /// <summary>ra3_engine_elbo.</summary>
    [UnmanagedCallersOnly(EntryPoint = "ra3_engine_elbo")]
    public static Status Elbo(byte* backend, float* seg, float* rationaleLogProbs, int lines, double alpha, double thinkCost, int maxSpan, double* logZ, float* thinkPosterior, int* kept) => Boundary.Run("ra3_engine_elbo", () =>
    {
        if (lines < 1)
        {
            throw new ArgumentException($"lines = {lines} must be at least 1");
        }

        float[] table = new ReadOnlySpan<float>(Boundary.NotNull(seg, "seg"), (lines + 1) * lines).ToArray();
        float[] rationales = rationaleLogProbs is null ? new float[lines] : new ReadOnlySpan<float>(rationaleLogProbs, lines).ToArray();
        Boundary.NotNull(logZ, "log_z");
        Boundary.NotNull(thinkPosterior, "think_posterior");
        Boundary.NotNull(kept, "kept");
        using var compute = Engine.CreateBackend(backend is null ? null : Boundary.String(backend, "backend"));
        var result = SegmentationInference.Infer(compute, [new ScoredTrace(table, rationales, lines)], new ElboOptions(alpha, thinkCost, maxSpan, rationaleLogProbs is not null))[0];
        *logZ = result.LogZ;
        result.ThinkPosterior.CopyTo(new Span<float>(thinkPosterior, lines));
        var keep = new Span<int>(kept, lines);
        keep.Clear();
        foreach (int boundary in result.KeptBoundaries)
        {
            keep[boundary - 1] = 1;
        }
    });

    /// <summary>The host's array of <paramref name="count"/> ids, at least <paramref name="least"/> of them.</summary>
    private static ReadOnlySpan<int> In(int* ids, int count, int least, string name) =>
        count < least ? throw new ArgumentException($"{name}: {count} tokens, at least {least} needed")
        : count == 0 ? [] : new ReadOnlySpan<int>(Boundary.NotNull(ids, name), count);

    /// <summary>Copies <paramref name="values"/> into the host's buffer of <paramref name="capacity"/> elements; a NULL buffer of capacity 0 only asked for the size.</summary>
    private static void CopyOut<T>(T[] values, T* buffer, int capacity, string name)
        where T : unmanaged
    {
        if (buffer is null && capacity == 0)
        {
            return;
        }

        if (values.Length > capacity)
        {
            throw new ArgumentException($"{name}: capacity {capacity} is too small; {values.Length} needed");
        }

        if (values.Length > 0)
        {
            values.CopyTo(new Span<T>(Boundary.NotNull(buffer, name), capacity));
        }
    }
}
