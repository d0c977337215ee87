namespace RA3.Model.Tokenizers.HuggingFace;

/// <summary>
/// GPT-2's byte ↔ printable-character map, which byte-level vocabularies are written in: printable
/// Latin-1 bytes map to themselves, the other 68 to U+0100 + n in byte order (space is Ġ, newline Ċ).
/// </summary>
internal static class ByteLevelAlphabet
{
    private static readonly char[] ByteToChar = Build();
    private static readonly int[] CharToByte = Invert(ByteToChar);

    /// <summary>The character byte <paramref name="b"/> is written as.</summary>
    public static char Char(byte b) => ByteToChar[b];

    /// <summary>The byte character <paramref name="c"/> stands for, or −1 when it is not one of the 256.</summary>
    public static int Byte(char c) => c < CharToByte.Length ? CharToByte[c] : -1;

    private static char[] Build()
    {
        var map = new char[256];
        int next = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is (>= '!' and <= '~') or (>= 0xA1 and <= 0xAC) or (>= 0xAE and <= 0xFF);
            map[b] = printable ? (char)b : (char)(256 + next++);
        }

        return map;
    }

    private static int[] Invert(char[] map)
    {
        var inverse = new int[512];
        Array.Fill(inverse, -1);
        for (int b = 0; b < 256; b++)
        {
            inverse[map[b]] = b;
        }

        return inverse;
    }
}
