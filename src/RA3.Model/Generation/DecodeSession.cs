using RA3.Kernels.Ops;
using RA3.Kernels.Tensors;

namespace RA3.Model.Generation;

/// <summary>
/// Sequences advancing through one KV cache of <see cref="Slots"/> slots, each slot holding one
/// sequence at a time: <see cref="Step"/> appends any number of tokens to each slot — a prompt in
/// one piece, a run of forced tokens, one sampled token, or nothing — as rows of one packed
/// forward pass (<see cref="Transformer.Extend"/>: chunked prefill and decode together, split into
/// passes of at most <see cref="MaxRows"/> rows), and leaves the next-token logits of every slot
/// that was fed on the backend; <see cref="Sample"/> draws from them there
/// (<see cref="Backend.SampleTokens"/>), so only ids and log-probabilities reach the host.
/// <see cref="Reset"/> empties a slot for the next sequence (continuous batching). The caller
/// decides every token, which is what plain generation and the E-step's rollouts (code lines
/// forced, decisions and rationales sampled) both need.
/// </summary>
public sealed class DecodeSession : IDisposable
{
    private readonly Transformer model;
    private readonly KvCache cache;
    private readonly Dictionary<int, Activations> plans = [];
    private readonly int[] lengths;
    private readonly int[] rowIds, rowSlots, rowPositions, lastRows;
    private readonly Tensor uniforms, tokens, logProbs, sampleLogProbs, entropies;
    private readonly float[] hostUniforms;
    private Tensor? probes, probeLogProbs;
    private int[] hostProbes = [];
    private Tensor? logits;

    /// <summary>A session of <paramref name="slots"/> sequences of at most <paramref name="capacity"/> positions each, running at most <paramref name="maxRows"/> rows per forward pass.</summary>
    public DecodeSession(Transformer model, int slots, int capacity, int maxRows = 256)
    {
        ArgumentNullException.ThrowIfNull(model);
        model.Config.CheckPositions(capacity, "a decode session");
        if (slots < 1 || maxRows < slots)
        {
            throw new ArgumentException($"a decode session needs at least one slot and at least as many rows per pass as slots; got {slots} slots and {maxRows} rows");
        }

        this.model = model;
        MaxRows = maxRows;
        cache = new KvCache(model.Backend, model.Config, slots, capacity);
        lengths = new int[slots];
        rowIds = new int[maxRows];
        rowSlots = new int[maxRows];
        rowPositions = new int[maxRows];
        lastRows = new int[slots];
        var b = model.Backend;
        uniforms = b.Empty(DType.Float32, slots);
        tokens = b.Empty(DType.Int32, slots);
        logProbs = b.Empty(DType.Float32, slots);
        sampleLogProbs = b.Empty(DType.Float32, slots);
        entropies = b.Empty(DType.Float32, slots);
        hostUniforms = new float[slots];
    }

    /// <summary>Number of slots.</summary>
    public int Slots => cache.B;

    /// <summary>Positions each slot may hold.</summary>
    public int Capacity => cache.Capacity;

    /// <summary>Most rows of one forward pass.</summary>
    public int MaxRows { get; }

    /// <summary>Positions filled per slot.</summary>
    public IReadOnlyList<int> Lengths => lengths;

    /// <summary>Forward passes run so far (a step whose rows exceed <see cref="MaxRows"/> takes several).</summary>
    public long Passes { get; private set; }

    /// <summary>Rows (tokens) run so far.</summary>
    public long Rows { get; private set; }

    /// <summary>Empties <paramref name="slot"/>: its next tokens start a new sequence at position 0.</summary>
    public void Reset(int slot) => lengths[slot] = 0;

    /// <summary>
    /// Appends <paramref name="counts"/>[s] tokens to each slot s, taken in slot order from
    /// <paramref name="fed"/>; afterwards <see cref="Sample"/> reads each fed slot's logits after its
    /// last new token (a slot fed nothing has logits of no meaning).
    /// </summary>
    public void Step(ReadOnlySpan<int> counts, ReadOnlySpan<int> fed)
    {
        if (counts.Length != Slots)
        {
            throw new ArgumentException($"a step of a {Slots}-slot session needs {Slots} counts, got {counts.Length}");
        }

        int total = 0, active = 0;
        for (int s = 0; s < Slots; s++)
        {
            if (counts[s] < 0 || lengths[s] + counts[s] > Capacity)
            {
                throw new ArgumentException($"slot {s}: {counts[s]} tokens after {lengths[s]} exceed the session's {Capacity} positions");
            }

            total += counts[s];
            active += counts[s] > 0 ? 1 : 0;
        }

        if (fed.Length != total)
        {
            throw new ArgumentException($"the counts add up to {total} tokens, {fed.Length} were given");
        }

        // Every slot's last token goes into the final pass (whose head gives the logits); the tokens
        // before them fill earlier passes first, in slot order, so each slot's rows stay in sequence.
        Span<int> start = Slots <= 1024 ? stackalloc int[Slots] : new int[Slots];
        for (int s = 0, offset = 0; s < Slots; s++)
        {
            start[s] = offset;
            offset += counts[s];
        }

        Span<int> done = Slots <= 1024 ? stackalloc int[Slots] : new int[Slots];
        done.Clear();
        Array.Clear(lastRows);  // a slot fed nothing reads row 0's logits: of no meaning, but in range
        int leading = total - active, slot = 0;
        while (true)
        {
            bool final = leading + active <= MaxRows;
            int n = 0;
            while (slot < Slots && (final || n < MaxRows))
            {
                int before = counts[slot] - 1 - done[slot];  // tokens of this slot before its last, not yet run
                int take = final ? Math.Max(before, 0) : Math.Min(Math.Max(before, 0), MaxRows - n);
                for (int i = 0; i < take; i++)
                {
                    Row(n++, fed[start[slot] + done[slot]], slot);
                    done[slot]++;
                }

                leading -= take;
                if (final && counts[slot] > 0)
                {
                    lastRows[slot] = n;
                    Row(n++, fed[start[slot] + done[slot]], slot);
                    done[slot]++;
                }

                if (final || done[slot] >= counts[slot] - 1)
                {
                    slot++;
                }
            }

            if (final)
            {
                Run(n, active);
                return;
            }

            Run(n, 0);
            slot = 0;
        }
    }

    /// <summary>
    /// Draws one token for every slot from its logits (<see cref="Backend.SampleTokens"/>) with the
    /// caller's random numbers <paramref name="random"/> [Slots], and the log-probabilities of
    /// <paramref name="probeIds"/> [Slots, P] (−1: none); slots not fed by the last step get values
    /// of no meaning. Outputs are per slot: <paramref name="drawn"/> (−1 where the logits hold NaN or
    /// allow nothing), log π of the token under the model, under the draw, and the probes', and when
    /// <paramref name="entropy"/> is not empty the entropy of the model's distribution.
    /// </summary>
    public void Sample(ReadOnlySpan<double> random, SamplingOptions options, Tensor? banned, ReadOnlySpan<int> probeIds, Span<int> drawn, Span<float> tokenLogProbs, Span<float> drawLogProbs, Span<float> probeLogProbsOut, Span<float> entropy = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (logits is null)
        {
            throw new InvalidOperationException("sample after a step: no slot has logits yet");
        }

        for (int s = 0; s < Slots; s++)
        {
            // The largest float below 1 for a double that rounds up to 1.
            hostUniforms[s] = Math.Min((float)random[s], 0.99999994f);
        }

        uniforms.CopyFrom<float>(hostUniforms);
        int p = probeIds.Length / Slots;
        if (p > 0)
        {
            if (probes is null || probes.Shape[1] != p)
            {
                probes?.Dispose();
                probeLogProbs?.Dispose();
                probes = model.Backend.Empty(DType.Int32, Slots, p);
                probeLogProbs = model.Backend.Empty(DType.Float32, Slots, p);
                hostProbes = new int[Slots * p];
            }

            probeIds.CopyTo(hostProbes);
            probes.CopyFrom<int>(hostProbes);
        }

        model.Backend.SampleTokens(logits, uniforms, options.Temperature, options.TopP, options.TopK, banned, p > 0 ? probes : null, tokens, logProbs, sampleLogProbs, p > 0 ? probeLogProbs : null, entropy.IsEmpty ? null : entropies);
        tokens.CopyTo(drawn);
        logProbs.CopyTo(tokenLogProbs);
        sampleLogProbs.CopyTo(drawLogProbs);
        if (p > 0)
        {
            probeLogProbs!.CopyTo(probeLogProbsOut);
        }

        if (!entropy.IsEmpty)
        {
            entropies.CopyTo(entropy);
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var plan in plans.Values)
        {
            plan.Dispose();
        }

        cache.Dispose();
        uniforms.Dispose();
        tokens.Dispose();
        logProbs.Dispose();
        sampleLogProbs.Dispose();
        entropies.Dispose();
        probes?.Dispose();
        probeLogProbs?.Dispose();
    }

    private void Row(int r, int id, int slot)
    {
        rowIds[r] = id;
        rowSlots[r] = slot;
        rowPositions[r] = lengths[slot]++;
    }

    // One forward pass of the first n rows (padded to a plan size); with `withLogits` slots, each fed slot's logits.
    private void Run(int n, int withLogits)
    {
        if (n == 0)
        {
            return;
        }

        // Plans come in sizes of multiples of 16 rows (up to MaxRows), so a few shapes recur.
        int size = Math.Min(MaxRows, (n + 15) / 16 * 16);
        if (!plans.TryGetValue(size, out var plan))
        {
            plan = model.PlanExtend(size, Slots);
            plans[size] = plan;
        }

        for (int r = n; r < size; r++)
        {
            (rowIds[r], rowSlots[r], rowPositions[r]) = (0, -1, 0);
        }

        var rows = withLogits > 0 ? lastRows.AsSpan() : [];
        model.Extend(plan, cache, rowIds.AsSpan(0, size), rowSlots.AsSpan(0, size), rowPositions.AsSpan(0, size), rows);
        if (withLogits > 0)
        {
            logits = plan.Logits;
        }

        Passes++;
        Rows += n;
    }
}
