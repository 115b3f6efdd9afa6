package job

import (
	"fmt"
	"math"
	"strconv"
)

// Tasks is how many tasks (ranks) the job runs: nodes × tasks per node,
// at least 1 (a spec stored before these fields existed has zeros).
func (s *Spec) Tasks() int {
	return int(satMul(int64(max(s.Nodes, 1)), int64(max(s.TasksPerNode, 1))))
}

// Allocation is what the job holds in total while it runs: cpus for each
// task, memory and GPUs for each node. It is what a job costs and what a
// single node must have room for when all its tasks run there.
func (s *Spec) Allocation() Resources {
	r := s.Resources
	nodes := int64(max(s.Nodes, 1))
	return Resources{
		// From thousandths, so that Allocation().MilliCPUs() is exactly
		// tasks × MilliCPUs(), as the scheduler counts.
		CPUs:     float64(satMul(r.MilliCPUs(), int64(s.Tasks()))) / 1000,
		MemoryMB: satMul(r.MemoryMB, nodes),
		GPUs:     int(satMul(int64(r.GPUs), nodes)),
	}
}

// normalizeTasks fills the task layout's defaults and checks its bounds.
func (s *Spec) normalizeTasks() error {
	if s.Nodes == 0 {
		s.Nodes = 1
	}
	if s.Nodes < 1 || s.Nodes > MaxJobNodes {
		return fieldErr("nodes", "%d: must be between 1 and %d", s.Nodes, MaxJobNodes)
	}
	if s.TasksPerNode == 0 {
		s.TasksPerNode = 1
	}
	if s.TasksPerNode < 1 || s.TasksPerNode > MaxTasksPerNode {
		return fieldErr("tasks_per_node", "%d: must be between 1 and %d", s.TasksPerNode, MaxTasksPerNode)
	}
	switch s.Type {
	case "", TypeMPI:
	default:
		return fieldErr("type", "%q is not a job type (%s)", s.Type, TypeMPI)
	}
	return nil
}

// checkFits refuses a job that could never run: one that needs more than
// the largest node has, or (SingleNode) more in total than the one node.
// Resources and the task layout are normalized already. Zero Limits
// know nothing and refuse nothing.
func (s *Spec) checkFits(lim Limits) error {
	if lim == (Limits{}) {
		return nil // nothing is known (a cluster that cannot be asked): its scheduler judges
	}
	r, node := s.Resources, lim.MaxNode
	per := ""
	if s.Tasks() > 1 {
		per = " per task"
	}
	// One task must fit a node whatever the layout. Checked first, this
	// also bounds the products below, so they cannot overflow.
	if r.MilliCPUs() > node.MilliCPUs() {
		return fieldErr("resources.cpus", "%g CPUs%s is more than the largest node has (%g)", r.CPUs, per, node.CPUs)
	}
	if r.MemoryMB > node.MemoryMB {
		return fieldErr("resources.memory_mb", "%d MB is more than the largest node has (%d MB)", r.MemoryMB, node.MemoryMB)
	}
	if r.GPUs > node.GPUs {
		return fieldErr("resources.gpus", "%d GPUs is more than the largest node has (%d)", r.GPUs, node.GPUs)
	}
	if s.Tasks() == 1 {
		return nil
	}
	if lim.SingleNode {
		return s.checkFitsOneNode(node)
	}
	if lim.MaxNodes > 0 && s.Nodes > lim.MaxNodes {
		return fieldErr("nodes", "%d nodes is more than there are (%d)", s.Nodes, lim.MaxNodes)
	}
	if need := r.MilliCPUs() * int64(s.TasksPerNode); need > node.MilliCPUs() {
		return fieldErr("resources.cpus", "needs %s CPUs per node (%d tasks × %g cpus); the largest node has %g",
			milliText(need), s.TasksPerNode, r.CPUs, node.CPUs)
	}
	return nil
}

// checkFitsOneNode checks the whole allocation against the one node every
// task runs on.
func (s *Spec) checkFitsOneNode(node Resources) error {
	r, all := s.Resources, s.Allocation()
	layout := fmt.Sprintf("%d nodes × %d tasks", s.Nodes, s.TasksPerNode)
	if all.MilliCPUs() > node.MilliCPUs() {
		hint := "ask for fewer tasks"
		if fit := node.MilliCPUs() / int64(s.Tasks()); fit >= 1 {
			hint = "ask for fewer cpus per task, e.g. " + milliText(fit) + ", or fewer tasks"
		}
		return fieldErr("resources.cpus", "needs %s CPUs in total (%s × %g cpus); every task runs on this one node, which has %g: %s",
			milliText(all.MilliCPUs()), layout, r.CPUs, node.CPUs, hint)
	}
	if all.MemoryMB > node.MemoryMB {
		return fieldErr("resources.memory_mb", "needs %d MB in total (%d nodes × %d MB); every task runs on this one node, which has %d MB",
			all.MemoryMB, s.Nodes, r.MemoryMB, node.MemoryMB)
	}
	if all.GPUs > node.GPUs {
		return fieldErr("resources.gpus", "needs %d GPUs in total (%d nodes × %d GPUs); every task runs on this one node, which has %d",
			all.GPUs, s.Nodes, r.GPUs, node.GPUs)
	}
	return nil
}

func milliText(m int64) string { return strconv.FormatFloat(float64(m)/1000, 'g', -1, 64) }

// satMul is a×b for non-negative a and b, saturating at MaxInt64 rather
// than wrapping to a value that would pass a capacity check.
func satMul(a, b int64) int64 {
	if a <= 0 || b <= 0 {
		return a * b
	}
	if a > math.MaxInt64/b {
		return math.MaxInt64
	}
	return a * b
}
