using System.Collections.Concurrent;
using NUnit.Framework;
using NUnit.Framework.Interfaces;
using RA3.Testing;
using TorchSharp;
using static TorchSharp.torch;

[assembly: TorchScopePerTest]

namespace RA3.Testing;

/// <summary>
/// Every TorchSharp tensor a test makes, the temporaries of an expression such as
/// <c>a.matmul(b).log_softmax(-1)</c> included, is disposed on the test's own thread when the test
/// ends. Left to the GC, a temporary is unreachable while libtorch still works on it (the JIT drops
/// <c>this</c> once its handle is read), and its finalizer can free the native tensor from the
/// finalizer thread mid-call. That is the likely cause of a test host's segfault inside
/// libtorch_cpu when the three test projects ran side by side (not reproduced alone). A scope holds
/// every tensor until the test is over, so none is finalized during it.
/// </summary>
[AttributeUsage(AttributeTargets.Assembly)]
internal sealed class TorchScopePerTestAttribute : Attribute, ITestAction
{
    // By test: parallel fixtures run tests on several threads, and a scope is its thread's.
    private static readonly ConcurrentDictionary<string, DisposeScope> Scopes = new(StringComparer.Ordinal);

    /// <summary>Whether the test with <paramref name="testId"/> has its scope open.</summary>
    public static bool IsOpen(string testId) => Scopes.ContainsKey(testId);

    /// <summary>Each test, not each fixture or the assembly.</summary>
    public ActionTargets Targets => ActionTargets.Test;

    /// <summary>Opens the test's scope (before its set-up, so tensors made there are in it too).</summary>
    public void BeforeTest(ITest test) => Scopes[test.Id] = NewDisposeScope();

    /// <summary>Disposes every tensor the test made (after its tear-down).</summary>
    public void AfterTest(ITest test)
    {
        if (Scopes.TryRemove(test.Id, out var scope))
        {
            scope.Dispose();
        }
    }
}

/// <summary>The scope is in place in every assembly that compiles this file.</summary>
public sealed class TorchScopePerTestTests
{
    [Test]
    public void EveryTestRunsInItsOwnScope() =>
        Assert.That(TorchScopePerTestAttribute.IsOpen(TestContext.CurrentContext.Test.ID), Is.True, "the assembly applies the scope");
}
