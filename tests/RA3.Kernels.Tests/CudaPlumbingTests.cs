using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using NUnit.Framework;
using RA3.Kernels.Cuda;
using RA3.Kernels.Native;
using RA3.Testing;

namespace RA3.Kernels.Tests;

/// <summary>
/// The CUDA plumbing that a machine without a GPU can check: every function of the C ABI is bound by
/// a P/Invoke declaration with the same arity, and <see cref="CudaBackend.Create"/> either works
/// (a CUDA build on a GPU machine) or says why not. The kernels themselves are checked against the
/// CPU kernels by bench/gpu/run.sh on a GPU machine.
/// </summary>
public sealed partial class CudaPlumbingTests
{
    [Test]
    public void EveryHeaderFunctionIsBoundWithItsArity()
    {
        string header = File.ReadAllText(Path.Combine(Fixtures.RepoRoot, "native", "include", "ra3.h"));
        var declared = HeaderFunction().Matches(header).ToDictionary(m => m.Groups["name"].Value, m => Arity(m.Groups["params"].Value));
        Assert.That(declared, Has.Count.GreaterThan(30), "the header parse found too few functions");

        Type methods = typeof(NativeBackend).Assembly.GetType("RA3.Kernels.Native.NativeMethods", throwOnError: true)!;
        var bound = methods.GetMethods(BindingFlags.Public | BindingFlags.Static)
            .Select(m => (Method: m, Import: m.GetCustomAttribute<LibraryImportAttribute>()))
            .Where(x => x.Import is not null)
            .ToDictionary(x => x.Import!.EntryPoint!, x => x.Method.GetParameters().Length);

        Assert.Multiple(() =>
        {
            foreach (var (name, arity) in declared)
            {
                Assert.That(bound.ContainsKey(name), Is.True, $"{name} in ra3.h has no P/Invoke declaration");
                if (bound.TryGetValue(name, out int count))
                {
                    Assert.That(count, Is.EqualTo(arity), $"{name}: {arity} parameters in ra3.h, {count} in the declaration");
                }
            }

            foreach (string name in bound.Keys)
            {
                Assert.That(declared.ContainsKey(name), Is.True, $"the declaration of {name} has no function in ra3.h");
            }
        });
    }

    [Test]
    public void CreateWorksOrSaysWhy()
    {
        if (NativeBackend.CudaDevices > 0)
        {
            using var cuda = CudaBackend.Create();
            using var a = cuda.FromArray([1f, 2f, 3f, 4f], 2, 2);
            using var c = cuda.FromArray(new float[4], 2, 2);
            cuda.Gemm(a, false, a, false, c);
            var result = new float[4];
            c.CopyTo<float>(result);
            Assert.That(result, Is.EqualTo(new[] { 7f, 10f, 15f, 22f }).Within(1e-2));
            return;
        }

        var error = Assert.Throws<InvalidOperationException>(() => CudaBackend.Create().Dispose())!;
        Assert.That(error.Message, Does.Contain("no CUDA backend").And.Contain("built without CUDA").Or.Contain("sees no CUDA device"));
    }

    private static int Arity(string parameters) => parameters.Trim() is "void" or "" ? 0 : parameters.Split(',').Length;

    [GeneratedRegex(@"RA3_API\s+[\w\s\*]+?\b(?<name>ra3_\w+)\s*\((?<params>[^)]*)\)\s*;", RegexOptions.Singleline)]
    private static partial Regex HeaderFunction();
}
