using System.Collections.Concurrent;
using System.Collections.Frozen;
using System.Reflection;
using RA3.Kernels.Reference;
using RA3.Kernels.Tensors;

namespace RA3.Kernels.Ops;

/// <summary>
/// The contract between <see cref="Backend"/> and a backend: every op's <c>…Core</c> is virtual
/// and by default runs its <see cref="Reference.ReferenceKernels"/> body, so a backend overrides only the
/// ops it accelerates (<see cref="Accelerates"/> says which). On host memory the reference reads
/// and writes the tensors in place; on a device backend each fallback copies its tensors to the
/// host and its outputs back, and is counted in <see cref="HostFallbacks"/> — explicit, never silent.
/// </summary>
/// <remarks>
/// Mixed precision: a float argument may be float32 or bfloat16 storage. Every op computes in f32
/// (sums in f32 or wider) and rounds each bf16 output once, to nearest even
/// (<c>ReferenceKernels.ToBFloat16</c> defines it). A backend's <c>…Core</c> sees float32 tensors
/// only, unless the override carries <see cref="TakesBFloat16Attribute"/>: otherwise an op with a
/// bf16 argument runs its reference body (widening bf16 inputs exactly, rounding bf16 outputs),
/// counted in <see cref="HostFallbacks"/>. A kernel that declares bf16 and meets a combination of
/// storage types it does not accelerate calls the base <c>…Core</c>, which lands on the same
/// counted reference.
/// </remarks>
public abstract partial class Backend
{
    private static readonly string[] OpNames = KernelDeclarations.OpNames;

    private readonly ConcurrentDictionary<string, long> fallbacks = new(StringComparer.Ordinal);
    private FrozenSet<string>? bfloat16KernelSet;

    /// <summary>Every op of the contract, by the name of its public method (<c>Gemm</c>, <c>RmsNormBackward</c>, …).</summary>
    public static IReadOnlyList<string> AllOps => OpNames;

    /// <summary>Ops this backend ran on the reference tier through host copies, with how often: device tensors, or bf16 ones on any backend (float32 host tensors are read in place and not counted).</summary>
    public IReadOnlyDictionary<string, long> HostFallbacks => fallbacks;

    /// <summary>Whether this backend runs <paramref name="op"/> (a name from <see cref="AllOps"/>) with a kernel of its own rather than the reference body.</summary>
    public bool Accelerates(string op) => KernelOf(GetType(), op) != typeof(Backend);

    /// <summary>
    /// The class whose kernel a backend of class <paramref name="backend"/> runs for <paramref name="op"/>:
    /// <see cref="Backend"/> for the reference body, the backend's own class, or a base backend it
    /// inherits the kernel from (the native backend runs the managed CPU kernels for ops the C ABI lacks).
    /// </summary>
    public static Type KernelOf(Type backend, string op)
    {
        ArgumentNullException.ThrowIfNull(backend);
        if (!backend.IsAssignableTo(typeof(Backend)))
        {
            throw new ArgumentException($"{backend.Name} is not a backend", nameof(backend));
        }

        if (!OpNames.Contains(op, StringComparer.Ordinal))
        {
            throw new ArgumentException($"no op '{op}'; the ops are {string.Join(", ", OpNames)}", nameof(op));
        }

        return backend.GetMethod(op + "Core", BindingFlags.Instance | BindingFlags.NonPublic)!.DeclaringType!;
    }

    /// <summary>Allocates zeroed storage of <paramref name="byteLength"/> bytes: host memory unless a device backend overrides this, <see cref="Write"/> and <see cref="Read"/>.</summary>
    protected virtual TensorStorage Allocate(long byteLength) => new HostStorage(byteLength);

    /// <summary>Copies raw bytes into the tensor's elements.</summary>
    protected internal virtual unsafe void Write(Tensor tensor, ReadOnlySpan<byte> source) =>
        source.CopyTo(new Span<byte>((byte*)((HostStorage)tensor.Storage).Pointer + (tensor.Offset * tensor.DType.SizeInBytes()), source.Length));

    /// <summary>Copies the tensor's elements out as raw bytes.</summary>
    protected internal virtual unsafe void Read(Tensor tensor, Span<byte> destination) =>
        new ReadOnlySpan<byte>((byte*)((HostStorage)tensor.Storage).Pointer + (tensor.Offset * tensor.DType.SizeInBytes()), destination.Length).CopyTo(destination);

    /// <summary>
    /// Whether ops also check index tensors (ids, targets, line ids, lengths) on device memory,
    /// through a copy to the host. Off by default: on a device the host code that fills those
    /// tensors checks them before the upload (the model's plans do), so the hot path has no
    /// device-to-host round trip. On host memory they are always checked, in place.
    /// </summary>
    public bool CheckDeviceIndices { get; set; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the element when an element of <paramref name="ids"/> is outside [lo, hi) (see <see cref="CheckDeviceIndices"/>).</summary>
    private protected void CheckIndices(Tensor ids, int lo, int hi, string name)
    {
        if (IndicesToCheck(ids, out var span))
        {
            ShapeCheck.Ids(span, lo, hi, name, ids.Shape);
        }
    }

    /// <summary>An index tensor's elements to check: in place on host memory, a copy on a device when <see cref="CheckDeviceIndices"/>; false when they are checked where the host built them.</summary>
    private protected unsafe bool IndicesToCheck(Tensor ids, out ReadOnlySpan<int> span)
    {
        if (ids.Storage is HostStorage host)
        {
            span = new ReadOnlySpan<int>((int*)host.Pointer + ids.Offset, checked((int)ids.Count));
            return true;
        }

        span = CheckDeviceIndices ? ids.ToInt32Array() : default;
        return CheckDeviceIndices;
    }

    /// <summary>
    /// Whether the public op <paramref name="op"/> must run its reference body: some tensor is
    /// stored in a 16-bit float type and this backend's kernel for the op does not declare
    /// <see cref="TakesBFloat16Attribute"/> (a kernel that does receives bf16 tensors itself).
    /// </summary>
    private bool OnReference(string op, params ReadOnlySpan<Tensor?> tensors)
    {
        foreach (var t in tensors)
        {
            if (t is not null && t.DType != DType.Float32 && t.DType != DType.Int32)
            {
                return !BFloat16KernelSet.Contains(op);
            }
        }

        return false;
    }

    /// <summary>Whether this backend's kernel for <paramref name="op"/> (a name from <see cref="AllOps"/>) takes bfloat16 tensors itself rather than through the reference tier.</summary>
    public bool TakesBFloat16(string op)
    {
        KernelOf(GetType(), op); // names the ops when op is not one
        return BFloat16KernelSet.Contains(op);
    }

    private FrozenSet<string> BFloat16KernelSet => bfloat16KernelSet ??= KernelDeclarations.TakingBFloat16(GetType());

    /// <summary>Host access for one reference call of <paramref name="op"/>.</summary>
    private protected HostCall Host(string op) => new(this, op);

    /// <summary>
    /// The tensors of one reference call as host spans: float32 and int32 host memory in place,
    /// device memory as copies (outputs written back on <see cref="Dispose"/>), bfloat16 widened to
    /// float32 copies whose outputs are rounded back to nearest even. Outputs are read in first,
    /// since backward ops accumulate into them.
    /// </summary>
    private protected sealed unsafe class HostCall(Backend backend, string op) : IDisposable
    {
        private readonly List<(Tensor Tensor, Array Copy)> outputs = [];

        // One copy per tensor, so that a reference body which writes a tensor and then reads it
        // (the fused add + norm's sum) reads what it wrote, not the device's stale contents.
        private readonly Dictionary<Tensor, Array> copies = new(ReferenceEqualityComparer.Instance);
        private bool copied;

        /// <summary>An input's floats (empty for null).</summary>
        public ReadOnlySpan<float> In(Tensor? t) => Floats(t, output: false);

        /// <summary>An output's floats, read and written.</summary>
        public Span<float> Out(Tensor t) => Floats(t, output: true);

        /// <summary>An input's int32 elements (empty for null).</summary>
        public ReadOnlySpan<int> Ints(Tensor? t) => Elements<int>(t, output: false);

        /// <summary>An int32 output, read and written.</summary>
        public Span<int> OutInts(Tensor t) => Elements<int>(t, output: true);

        /// <summary>Writes device outputs back and counts the fallback.</summary>
        public void Dispose()
        {
            foreach (var (tensor, copy) in outputs)
            {
                if (tensor.DType == DType.BFloat16)
                {
                    var rounded = new ushort[copy.Length];
                    ReferenceKernels.ToBFloat16((float[])copy, rounded);
                    tensor.CopyFrom<ushort>(rounded);
                }
                else if (copy is float[] f)
                {
                    tensor.CopyFrom<float>(f);
                }
                else
                {
                    tensor.CopyFrom<int>((int[])copy);
                }
            }

            if (copied)
            {
                backend.fallbacks.AddOrUpdate(op, 1, (_, n) => n + 1);
            }
        }

        private Span<float> Floats(Tensor? t, bool output)
        {
            if (t is null || t.DType == DType.Float32)
            {
                return Elements<float>(t, output);
            }

            if (t.DType != DType.BFloat16)
            {
                throw new NotSupportedException($"{op}: no op computes on {t.DType} storage yet ({t})");
            }

            if (copies.TryGetValue(t, out var seen))
            {
                return Outputs(t, (float[])seen, output);
            }

            var stored = new ushort[checked((int)t.Count)];
            t.CopyTo<ushort>(stored);
            var wide = new float[stored.Length];
            ReferenceKernels.FromBFloat16(stored, wide);
            copied = true;
            copies[t] = wide;
            return Outputs(t, wide, output);
        }

        private Span<T> Elements<T>(Tensor? t, bool output)
            where T : unmanaged
        {
            if (t is null)
            {
                return [];
            }

            int count = checked((int)t.Count);
            if (t.Storage is HostStorage host)
            {
                return new Span<T>((T*)host.Pointer + t.Offset, count);
            }

            if (copies.TryGetValue(t, out var seen))
            {
                return Outputs(t, (T[])seen, output);
            }

            var copy = new T[count];
            t.CopyTo<T>(copy);
            copied = true;
            copies[t] = copy;
            return Outputs(t, copy, output);
        }

        // The copy of t, remembered for writing back once (on Dispose) when it is an output.
        private T[] Outputs<T>(Tensor t, T[] copy, bool output)
        {
            if (output && !outputs.Exists(o => ReferenceEquals(o.Tensor, t)))
            {
                outputs.Add((t, copy));
            }

            return copy;
        }
    }
}
