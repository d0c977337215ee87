using System.Runtime.InteropServices;

namespace RA3.Train.Distributed;

/// <summary>
/// The binary form in which ranks exchange results (<see cref="DataParallel.Gather"/>): arrays with
/// their length first, strings that may be null. Floats travel as their bits, so a gathered value
/// is the one its rank computed, exactly.
/// </summary>
internal static class Wire
{
    public static void WriteArray<T>(this BinaryWriter w, T[] values)
        where T : unmanaged
    {
        w.Write(values.Length);
        w.Write(MemoryMarshal.AsBytes(values.AsSpan()));
    }

    public static T[] ReadArray<T>(this BinaryReader r)
        where T : unmanaged
    {
        var values = new T[r.ReadInt32()];
        r.BaseStream.ReadExactly(MemoryMarshal.AsBytes(values.AsSpan()));
        return values;
    }

    public static void WriteNullable(this BinaryWriter w, string? text)
    {
        w.Write(text is not null);
        if (text is not null)
        {
            w.Write(text);
        }
    }

    public static string? ReadNullable(this BinaryReader r) => r.ReadBoolean() ? r.ReadString() : null;

    public static void WriteStrings(this BinaryWriter w, string?[] texts)
    {
        w.Write(texts.Length);
        foreach (string? t in texts)
        {
            w.WriteNullable(t);
        }
    }

    public static string?[] ReadStrings(this BinaryReader r)
    {
        var texts = new string?[r.ReadInt32()];
        for (int i = 0; i < texts.Length; i++)
        {
            texts[i] = r.ReadNullable();
        }

        return texts;
    }
}
