namespace RA3.Kernels.Cpu;

/// <summary>How elementwise and row kernels split work into parallel tasks.</summary>
internal static class Chunks
{
    /// <summary>Elements per task for elementwise kernels: large enough to amortise scheduling.</summary>
    public const int Elements = 1 << 14;

    /// <summary>Number of tasks covering <paramref name="count"/> items in pieces of <paramref name="size"/>.</summary>
    public static int Count(long count, int size) => (int)((count + size - 1) / size);

    /// <summary>The [start, end) items of task <paramref name="index"/>.</summary>
    public static (long Start, int Length) Range(int index, long count, int size)
    {
        long start = (long)index * size;
        return (start, (int)Math.Min(size, count - start));
    }

    /// <summary>Rows per task so that a task holds about <see cref="Elements"/> elements.</summary>
    public static int RowsPerTask(int columns) => Math.Max(1, Elements / Math.Max(1, columns));
}
