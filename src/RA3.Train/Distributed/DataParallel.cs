using System.Text;
using RA3.Kernels.Distributed;
using RA3.Kernels.Ops;
using RA3.Model;
using RA3.Model.Optim;

namespace RA3.Train.Distributed;

/// <summary>
/// What a training run does differently on several ranks, in one place. Every rank runs the same
/// program on the same data; each takes a contiguous share of every global batch (of sequences,
/// traces, prompts or problems: <see cref="Share"/>), the ranks sum their weighted gradients
/// before clipping and AdamW (the optimizer of <see cref="Optimizer"/>), exchange what each
/// computed so that all hold the whole batch's results in the global order
/// (<see cref="Gather"/>), and rank 0 alone writes files (<see cref="RootWrites"/>) and logs.
/// Every random draw is keyed by the seed, the step and a sample's global index, never by the
/// rank, so the world size does not change what is drawn. In one process every method reduces to
/// what the single-process code did, with nothing copied or sent.
/// </summary>
public sealed class DataParallel : IDisposable
{
    private readonly bool ownsGroup;

    private DataParallel(Communicator group, bool ownsGroup, ParallelSettings settings)
    {
        Group = group;
        this.ownsGroup = ownsGroup;
        ShardOptimizer = settings.Zero == 1 && group.Size > 1;
    }

    /// <summary>One process alone: every collective a no-op, every share the whole.</summary>
    public static DataParallel Alone { get; } = new(Communicator.Single, ownsGroup: false, new ParallelSettings());

    /// <summary>The ranks (for the backend's tensors: NCCL's for a CUDA backend).</summary>
    public Communicator Group { get; }

    /// <summary>This rank.</summary>
    public int Rank => Group.Rank;

    /// <summary>Number of ranks.</summary>
    public int Size => Group.Size;

    /// <summary>Whether this rank writes the files and the log.</summary>
    public bool IsRoot => Group.IsRoot;

    /// <summary>Whether optimizers shard their state over the ranks (ZeRO-1).</summary>
    public bool ShardOptimizer { get; }

    /// <summary>
    /// The data-parallel side of a run on <paramref name="backend"/> among the ranks of
    /// <paramref name="world"/> (<see cref="Communicator.Single"/> for one process), with its
    /// settings' timeout; without a backend, host values and files only (the demo's own stages).
    /// </summary>
    public static DataParallel Join(Communicator world, Backend? backend, ParallelSettings settings)
    {
        ArgumentNullException.ThrowIfNull(world);
        ArgumentNullException.ThrowIfNull(settings);
        var group = backend is null ? world : world.For(backend);
        group.Timeout = world.Timeout = TimeSpan.FromSeconds(settings.CollectiveTimeout);
        group.Abandon = world.Abandon;
        return new DataParallel(group, !ReferenceEquals(group, world), settings);
    }

    /// <summary>This rank's share of <paramref name="items"/> global items: a contiguous range, the first <c>items mod N</c> ranks taking one more.</summary>
    public (int Start, int Count) Share(int items) => ShareOf(items, Rank, Size);

    /// <summary>Rank <paramref name="rank"/>'s share of <paramref name="items"/> among <paramref name="ranks"/>.</summary>
    public static (int Start, int Count) ShareOf(int items, int rank, int ranks)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(items);
        int each = items / ranks, extra = items % ranks;
        return ((rank * each) + Math.Min(rank, extra), each + (rank < extra ? 1 : 0));
    }

    /// <summary>AdamW for <paramref name="model"/> over these ranks: state sharded when <see cref="ShardOptimizer"/>.</summary>
    public AdamWOptimizer Optimizer(Transformer model, float weightDecay, bool decayAll = false) =>
        new(model, weightDecay: weightDecay, group: Group, shardState: ShardOptimizer) { DecayAll = decayAll };

    /// <summary>Sums <paramref name="values"/> over the ranks, in place.</summary>
    public void Sum(Span<double> values) => Group.AllReduceSum(values);

    /// <summary>Whether any rank says yes (a stop signal seen by one of them, …).</summary>
    public bool Any(bool mine)
    {
        Span<double> flag = [mine ? 1 : 0];
        Group.AllReduceSum(flag);
        return flag[0] > 0;
    }

    /// <summary>
    /// Every rank's items, in rank order — the global order when each rank computed its
    /// <see cref="Share"/> of a list — on every rank. In one process: <paramref name="mine"/>.
    /// </summary>
    public List<T> Gather<T>(IReadOnlyList<T> mine, Action<BinaryWriter, T> write, Func<BinaryReader, T> read)
    {
        ArgumentNullException.ThrowIfNull(mine);
        ArgumentNullException.ThrowIfNull(write);
        ArgumentNullException.ThrowIfNull(read);
        if (Size == 1)
        {
            return [.. mine];
        }

        using var buffer = new MemoryStream();
        using (var writer = new BinaryWriter(buffer, Encoding.UTF8, leaveOpen: true))
        {
            writer.Write(mine.Count);
            foreach (var item in mine)
            {
                write(writer, item);
            }
        }

        var all = new List<T>();
        foreach (byte[] bytes in Group.AllGather(buffer.GetBuffer().AsSpan(0, (int)buffer.Length)))
        {
            using var reader = new BinaryReader(new MemoryStream(bytes), Encoding.UTF8);
            for (int n = reader.ReadInt32(); n > 0; n--)
            {
                all.Add(read(reader));
            }
        }

        return all;
    }

    /// <summary>
    /// Rank 0 runs <paramref name="write"/> (files, folders) once every rank has got here, and
    /// every rank waits for it: so no rank sees the write before it has made the decisions that
    /// precede it (whether a phase's output exists …), and every rank sees it afterwards.
    /// </summary>
    public void RootWrites(Action write)
    {
        ArgumentNullException.ThrowIfNull(write);
        Group.Barrier();
        if (IsRoot)
        {
            write();
        }

        Group.Barrier();
    }

    /// <summary>Releases the device communicator made for the backend, if any.</summary>
    public void Dispose()
    {
        if (ownsGroup)
        {
            Group.Dispose();
        }
    }
}
