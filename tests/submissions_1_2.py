"""Submissions for Labs 1 and 2, as students write them: correct ones in other styles than the
instructor's (float32 arithmetic among them), typical mistakes, and by-hand functions that
sneak in autograd. Each is the source of one or more solution cells, keyed by the function it
defines; ``test_labs_1_2.py`` runs the labs' test cells on them."""

from __future__ import annotations

LAB1, LAB2 = "lab1_chain_rule", "lab2_dynamic_programming"
TABLE_ERROR = r"values differ beyond tolerance"  # check_gradients names each wrong tensor
NONZERO_ERROR = r"\b[1-9]\.\d\de[-+]\d\d\b"      # ... and shows its largest error

# ------------------------------------------------------------------ Lab 1

LAB1_ALTERNATIVES = {
    "float32 arithmetic": {
        "d_tanh": '''
def d_tanh(u):
    return (1 - torch.tanh(u.float()) ** 2).to(u.dtype)
''',
        "d_sigmoid": '''
def d_sigmoid(u):
    s = torch.sigmoid(u.to(torch.float32))
    return (s - s * s).to(u.dtype)
''',
        "d_log": '''
def d_log(u):
    return torch.ones(u.shape) / u.float()
''',
        "affine_jacobians": '''
def affine_jacobians(W, x, b):
    n_h, n_x = W.shape
    eye = torch.eye(n_h)
    return {"W": eye[:, :, None] * x.float()[None, None, :], "b": eye, "x": W.float()}
''',
        "reuse_derivative": '''
def reuse_derivative(local):
    partials = torch.ones(1)
    count = 0
    for edges in local:
        partials = edges.float() @ partials
        count += edges.shape[0] * edges.shape[1]
    return partials.item(), count
''',
    },
    "other formulas": {
        "d_tanh": '''
def d_tanh(u):
    return 1 / torch.cosh(u) ** 2
''',
        "d_sigmoid": '''
def d_sigmoid(u):
    e = torch.exp(-u)
    return e / (1 + e) ** 2
''',
        "d_exp": '''
def d_exp(u):
    return u.exp()
''',
        "d_log": '''
def d_log(u):
    return u.reciprocal()
''',
        "d_square": '''
def d_square(u):
    return u + u
''',
        "central_difference": '''
def central_difference(f, x, step):
    return (f(x + step) - f(x - step)) / step / 2
''',
        "affine_jacobians": '''
def affine_jacobians(W, x, b):
    n_h, n_x = W.shape
    J_W = torch.zeros(n_h, n_h, n_x, dtype=W.dtype)
    for i in range(n_h):
        J_W[i, i, :] = x
    return {"W": J_W, "b": torch.diag(torch.ones(n_h, dtype=W.dtype)),
            "x": torch.einsum("ij->ij", W)}
''',
    },
    "other loops": {
        "forward_chain": '''
def forward_chain(layers, x):
    values = [x]
    for k in range(len(layers) - 1, -1, -1):
        values.insert(0, layers[k][0](values[0]))
    return values
''',
        "chain_derivative": '''
def chain_derivative(layers, values):
    factors = [dh(values[k + 1]) for k, (_, dh) in enumerate(layers)]
    return torch.stack(torch.broadcast_tensors(*factors)).prod(dim=0)
''',
        "chain_jacobian": '''
import functools

def chain_jacobian(layers, values):
    jacobians = [jac(values[k + 1]) for k, (_, jac) in enumerate(layers)]
    return functools.reduce(lambda right, left: left @ right, reversed(jacobians))
''',
        "forward_mode_cost": '''
def forward_mode_cost(widths):
    total = 0
    columns = widths[-1]
    for k in range(len(widths) - 3, -1, -1):
        total += widths[k] * widths[k + 1] * columns
    return total
''',
        "reverse_mode_cost": '''
def reverse_mode_cost(widths):
    n = widths
    return sum(n[0] * a * b for a, b in zip(n[1:-1], n[2:]))
''',
        "path_sum_derivative": '''
def path_sum_derivative(local):
    count = 0

    def walk(layer, node, factors):
        nonlocal count
        if layer == len(local):
            product = 1.0
            for factor in factors:
                product *= factor
                count += 1
            return product
        return sum(walk(layer + 1, following, factors + [float(local[layer][following, node])])
                   for following in range(local[layer].shape[0]))

    return walk(0, 0, []), count
''',
        "reverse_derivative": '''
def reverse_derivative(local):
    adjoint = [1.0]
    result = [torch.tensor(adjoint, dtype=torch.float64)]
    count = 0
    for edges in local[::-1]:
        rows = edges.tolist()
        new = [0.0] * len(rows[0])
        for j, row in enumerate(rows):
            for i, d in enumerate(row):
                new[i] += adjoint[j] * d
                count += 1
        adjoint = new
        result = [torch.tensor(adjoint, dtype=torch.float64)] + result
    return result, count
''',
    },
}

LAB1_MISTAKES = {
    "tanh derivative without tanh": {
        "sources": {"d_tanh": "def d_tanh(u):\n    return 1 - u ** 2\n"},
        "fails": ["test_d_tanh"], "message": [TABLE_ERROR, NONZERO_ERROR],
    },
    "finite differences from lab_utils": {
        "sources": {"d_exp": '''
from lab_utils import numerical_gradients

def d_exp(u):
    return numerical_gradients(lambda t: torch.exp(t).sum(), u)
'''},
        "fails": ["test_d_exp"], "message": ["expected a float32 result"],
    },
    "one-sided difference": {
        "sources": {"central_difference": '''
def central_difference(f, x, step):
    return (f(x + step) - f(x)) / step
'''},
        "fails": ["test_central_difference"], "message": [TABLE_ERROR, NONZERO_ERROR],
    },
    "central difference in float64 only": {
        "sources": {"central_difference": '''
def central_difference(f, x, step):
    x = x.double()
    return (f(x + step) - f(x - step)) / (2 * step)
'''},
        "fails": ["test_central_difference"], "message": ["expected a float32 result"],
    },
    "h^0 applied first": {
        "sources": {"forward_chain": '''
def forward_chain(layers, x):
    values = [x]
    for h, _ in layers:
        values.append(h(values[-1]))
    return values[::-1]
'''},
        "fails": ["test_forward_chain"], "message": [TABLE_ERROR, r"values\[\d\]"],
    },
    "local derivatives at the layer's output": {
        "sources": {"chain_derivative": '''
def chain_derivative(layers, values):
    result = torch.ones_like(values[-1])
    for k, (_, dh) in enumerate(layers):
        result = result * dh(values[k])
    return result
'''},
        "fails": ["test_chain_derivative"], "message": [TABLE_ERROR, r"values\[k \+ 1\]"],
    },
    "chain recomputes the layers": {
        "sources": {"chain_derivative": '''
def chain_derivative(layers, values):
    a, result = values[-1], torch.ones_like(values[-1])
    for h, dh in reversed(layers):
        result = result * dh(a)
        a = h(a)
    return result
'''},
        "fails": ["test_chain_derivative"], "message": ["use the stored values"],
    },
    "orders swapped": {
        "sources": {"forward_mode_cost": '''
def forward_mode_cost(widths):
    return sum(widths[0] * widths[k] * widths[k + 1] for k in range(1, len(widths) - 1))
'''},
        "fails": ["test_forward_mode_cost"],
        "differ": r"takes (\d+) multiplications, got (\d+)",
    },
    "one multiplication too few per path": {
        "sources": {"path_sum_derivative": '''
def path_sum_derivative(local):
    edges = [m.tolist() for m in local]
    total, count = 0.0, 0
    for hidden in itertools.product(*[range(len(m)) for m in edges[:-1]]):
        nodes = (0, *hidden, 0)
        product = edges[0][nodes[1]][0]
        for layer in range(1, len(edges)):
            product *= edges[layer][nodes[layer + 1]][nodes[layer]]
            count += 1
        total += product
    return total, count
'''},
        "fails": ["test_path_sum_derivative"],
        "differ": r"need (\d+) multiplications, you counted (\d+)",
    },
    "forward partials for adjoints": {
        "sources": {"reverse_derivative": '''
def reverse_derivative(local):
    partials, count = [torch.ones(1, dtype=torch.float64)], 0
    for edges in local:
        partials.append(edges @ partials[-1])
        count += edges.numel()
    return partials, count
'''},
        "fails": ["test_reverse_derivative"], "message": [TABLE_ERROR, "layer 1"],
    },
    "slightly wrong dy/dx": {
        "sources": {"reuse_derivative": '''
def reuse_derivative(local):
    partials, count = torch.ones(1, dtype=torch.float64), 0
    for edges in local:
        partials = edges @ partials
        count += edges.numel()
    return float(partials[0]) * (1 + 1e-4), count
'''},
        "fails": ["test_reuse_derivative"],
        "differ": r"expected dy/dx = (\S+) \(autograd\), got (\S+)",
    },
}

LAB1_CHEATS = {
    "lab_utils' autograd helper": {"d_tanh": '''
def d_tanh(u):
    return autograd_gradients(lambda t: torch.tanh(t).sum(), u)
'''},
    ".backward()": {"d_sigmoid": '''
def d_sigmoid(u):
    leaf = u.clone().requires_grad_(True)
    torch.sigmoid(leaf).sum().backward()
    return leaf.grad
'''},
    "torch.autograd.grad": {"d_log": '''
def d_log(u):
    leaf = u.detach().requires_grad_()
    return torch.autograd.grad(torch.log(leaf).sum(), leaf)[0]
'''},
    "torch.autograd.functional.jacobian": {"affine_jacobians": '''
def affine_jacobians(W, x, b):
    J_W, J_x, J_b = torch.autograd.functional.jacobian(lambda W, x, b: W @ x + b, (W, x, b))
    return {"W": J_W, "b": J_b, "x": J_x}
'''},
}

# ------------------------------------------------------------------ Lab 2

LAB2_ALTERNATIVES = {
    "float32 arithmetic": {
        "growth_rate": '''
def growth_rate(ns, values):
    A = torch.stack([torch.ones(len(ns)), torch.tensor(list(ns), dtype=torch.float32)], dim=1)
    b = torch.log(torch.tensor(list(values), dtype=torch.float32))[:, None]
    return float(torch.exp(torch.linalg.lstsq(A, b).solution[1, 0]))
''',
        "adjoints_tab": '''
def adjoints_tab(graph, counter=None):
    index = {node.name: i for i, node in enumerate(graph)}
    adjoint = torch.zeros(len(graph), dtype=torch.float32)
    adjoint[-1] = 1.0
    for node in reversed(graph):
        for parent, local in zip(node.parents, node.local):
            adjoint[index[parent]] += adjoint[index[node.name]] * local
            if counter is not None:
                counter["mults"] += 1
    return {node.name: float(adjoint[index[node.name]]) for node in graph}
''',
        "adjoints_all_paths": '''
def adjoints_all_paths(graph, counter=None):
    uses = {node.name: [] for node in graph}
    for node in graph:
        for parent, local in zip(node.parents, node.local):
            uses[parent].append((node.name, local))

    def paths(name):
        if name == graph[-1].name:
            return [[]]
        return [[local] + rest for child, local in uses[name] for rest in paths(child)]

    result = {}
    for node in graph:
        total = torch.zeros((), dtype=torch.float32)
        for path in paths(node.name):
            product = torch.ones((), dtype=torch.float32)
            for local in path:
                product = product * local
                if counter is not None:
                    counter["mults"] += 1
            total = total + product
        result[node.name] = total.item()
    return result
''',
    },
    "other styles": {
        "fib_naive": '''
def fib_naive(n, counter=None):
    if counter is not None:
        counter.update(["calls"])
    if n <= 1:
        return n
    return fib_naive(n - 2, counter) + fib_naive(n - 1, counter)
''',
        "growth_rate": '''
import numpy as np

def growth_rate(ns, values):
    return float(np.exp(np.polyfit(np.asarray(ns, dtype=float), np.log(values), 1)[0]))
''',
        "fib_memo": '''
def fib_memo(n, counter=None, memo=None):
    if counter is not None:
        counter["calls"] += 1
    memo = {} if memo is None else memo
    if n in memo:
        return memo[n]
    result = n if n < 2 else fib_memo(n - 2, counter, memo) + fib_memo(n - 1, counter, memo)
    memo[n] = result
    return result
''',
        "fib_cached": '''
def fib_cached(n):
    return fib_cached(n - 1) + fib_cached(n - 2) if n > 1 else n


fib_cached = functools.cache(fib_cached)
''',
        "fib_tab": '''
def fib_tab(n):
    table = [0] * (n + 1)
    if n >= 1:
        table[1] = 1
    for k in range(2, n + 1):
        table[k] = table[k - 1] + table[k - 2]
    return table[n]
''',
        "fib_iter": '''
def fib_iter(n):
    previous, current, k = 1, 0, 0   # F(k - 1), F(k), with F(-1) = 1
    while k < n:
        previous, current, k = current, previous + current, k + 1
    return current
''',
        "adjoints_tab": '''
def adjoints_tab(graph, counter=None):
    names = [node.name for node in graph]
    position = {name: i for i, name in enumerate(names)}
    adjoint = [0.0] * (len(graph) - 1) + [1.0]
    for i in range(len(graph) - 1, -1, -1):
        for parent, local in zip(graph[i].parents, graph[i].local):
            adjoint[position[parent]] = adjoint[position[parent]] + local * adjoint[i]
            if counter is not None:
                counter["mults"] = counter["mults"] + 1
    return dict(zip(names, adjoint))
''',
        "adjoints_memo": '''
def adjoints_memo(graph, counter=None):
    children = {node.name: [] for node in graph}
    for node in graph:
        for k, parent in enumerate(node.parents):
            children[parent].append((node.name, node.local[k]))

    @functools.lru_cache(maxsize=None)
    def adjoint(name):
        if name == graph[-1].name:
            return 1.0
        total = 0.0
        for child, local in children[name]:
            if counter is not None:
                counter["mults"] += 1
            total += local * adjoint(child)
        return total

    return {node.name: adjoint(node.name) for node in reversed(graph)}
''',
        "adjoints_all_paths": '''
def adjoints_all_paths(graph, counter=None):
    children = {node.name: [] for node in graph}
    for node in graph:
        for parent, local in zip(node.parents, node.local):
            children[parent].append((node.name, local))
    result = {}
    for node in graph:
        total, stack = 0.0, [(node.name, [])]
        while stack:
            name, factors = stack.pop()
            if name == graph[-1].name:
                product = 1.0
                for factor in factors:
                    product *= factor
                    if counter is not None:
                        counter["mults"] += 1
                total += product
            stack.extend((child, factors + [local]) for child, local in children[name])
        result[node.name] = total
    return result
''',
    },
}

LAB2_MISTAKES = {
    "naive counts only the calls that recurse": {
        "sources": {"fib_naive": '''
def fib_naive(n, counter=None):
    if n < 2:
        return n
    if counter is not None:
        counter["calls"] += 1
    return fib_naive(n - 1, counter) + fib_naive(n - 2, counter)
'''},
        "fails": ["test_fib_naive_calls"],
        "differ": r"expected (\d+), got (\d+)",
    },
    "memo kept between calls": {
        "sources": {"fib_memo": '''
def fib_memo(n, counter=None, memo={}):
    if counter is not None:
        counter["calls"] += 1
    if n not in memo:
        memo[n] = n if n < 2 else fib_memo(n - 1, counter, memo) + fib_memo(n - 2, counter, memo)
    return memo[n]
'''},
        "fails": ["test_fib_memo_calls"],
        "differ": r"expected (\d+), got (\d+)",
    },
    "memo counts only what it computes": {
        "sources": {"fib_memo": '''
def fib_memo(n, counter=None, memo=None):
    memo = {} if memo is None else memo
    if n in memo:
        return memo[n]
    if counter is not None:
        counter["calls"] += 1
    memo[n] = n if n < 2 else fib_memo(n - 1, counter, memo) + fib_memo(n - 2, counter, memo)
    return memo[n]
'''},
        "fails": ["test_fib_memo_calls", "test_fib_memo_shared_memo"],
        "differ": r"expected (\d+), got (\d+)",
    },
    "recursion, with a loop when it fails": {
        "sources": {"fib_tab": '''
def fib_tab(n):
    @functools.cache
    def recurse(k):
        return k if k < 2 else recurse(k - 1) + recurse(k - 2)
    try:
        return recurse(n)
    except RecursionError:
        table = [0, 1]
        for k in range(2, n + 1):
            table.append(table[k - 2] + table[k - 1])
        return table[n]
'''},
        "fails": ["test_fib_tab_no_recursion"], "message": ["expected a loop, got calls nested"],
    },
    "a loop after raising the recursion limit": {
        "sources": {"fib_iter": '''
def fib_iter(n):
    sys.setrecursionlimit(100_000)
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a
'''},
        "fails": ["test_fib_iter_no_recursion"],
        "message": ["a change of the recursion limit"],
    },
    "growth from the end points only": {
        "sources": {"growth_rate": '''
def growth_rate(ns, values):
    ns, values = list(ns), list(values)
    return (values[-1] / values[0]) ** (1 / (ns[-1] - ns[0]))
'''},
        "fails": ["test_growth_rate_least_squares"],
        "differ": r"expected (\S+), got (\S+)",
    },
    "growth rate a little off": {
        "sources": {"growth_rate": '''
def growth_rate(ns, values):
    xs, ys = [float(n) for n in ns], [math.log(v) for v in values]
    x_mean, y_mean = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = (sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys))
             / sum((x - x_mean) ** 2 for x in xs))
    return math.exp(slope) * (1 + 5e-5)
'''},
        "fails": ["test_growth_rate_exact", "test_growth_rate_least_squares"],
        "differ": r"expected (\S+), got (\S+)",
    },
    "adjoints overwritten instead of added up": {
        "sources": {"adjoints_tab": '''
def adjoints_tab(graph, counter=None):
    adjoint = {node.name: 0.0 for node in graph}
    adjoint[graph[-1].name] = 1.0
    for node in reversed(graph):
        for parent, local in zip(node.parents, node.local):
            adjoint[parent] = adjoint[node.name] * local
            if counter is not None:
                counter["mults"] += 1
    return adjoint
'''},
        "fails": ["test_adjoints_tab_values"], "message": [TABLE_ERROR, NONZERO_ERROR],
    },
    "recursion without a memo": {
        "sources": {"adjoints_memo": '''
def adjoints_memo(graph, counter=None):
    uses = {node.name: [] for node in graph}
    for node in graph:
        for parent, local in zip(node.parents, node.local):
            uses[parent].append((node.name, local))

    def adjoint(name):
        total = 1.0 if name == graph[-1].name else 0.0
        for child, local in uses[name]:
            total += adjoint(child) * local
            if counter is not None:
                counter["mults"] += 1
        return total

    return {node.name: adjoint(node.name) for node in graph}
'''},
        "fails": ["test_adjoints_memo_count"],
        "differ": r"expected (\d+), got (\d+)",
    },
}

LAB2_CHEATS = {
    "torch_adjoints": {"adjoints_tab": '''
def adjoints_tab(graph, counter=None):
    spec = [(node.name, node.op, node.parents) for node in graph]
    inputs = {node.name: node.value for node in graph if node.op == "input"}
    if counter is not None:
        counter["mults"] += sum(len(node.parents) for node in graph)
    return {name: float(value) for name, value in torch_adjoints(spec, inputs).items()}
'''},
    ".backward()": {"adjoints_memo": '''
def adjoints_memo(graph, counter=None):
    tensors = {}
    for node in graph:
        if node.op == "input":
            tensors[node.name] = torch.tensor(node.value, dtype=torch.float64,
                                              requires_grad=True)
        else:
            tensors[node.name] = OPS[node.op][1](*[tensors[p] for p in node.parents])
            tensors[node.name].retain_grad()
        if counter is not None:
            counter["mults"] += len(node.parents)
    tensors[graph[-1].name].backward()
    return {name: float(t.grad) for name, t in tensors.items()}
'''},
}

ALTERNATIVES = {LAB1: LAB1_ALTERNATIVES, LAB2: LAB2_ALTERNATIVES}
MISTAKES = {LAB1: LAB1_MISTAKES, LAB2: LAB2_MISTAKES}
CHEATS = {LAB1: LAB1_CHEATS, LAB2: LAB2_CHEATS}
