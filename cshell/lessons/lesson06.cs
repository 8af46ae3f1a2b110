# Lesson 06: cgroups. Namespaces decide what a process can see; cgroups decide how much
# it may use: CPU time, memory, the number of processes. Reconstructed from what the
# series' later articles recall; the words are ours.
#
#   cshell --script lesson06.cs [--step | --fast] [--lang zh|en] [--from STEP] [--typing]

title en: Lesson 06 · Cgroups: how much a container may use
title zh: 第 06 课 · Cgroups：容器能用多少资源

cd .

say:
  en: Lesson 05 closed a process inside namespaces: it sees only its own
      world. But nothing stopped it from eating the *host's* resources — all
      the CPU, all the memory, as many processes as it likes. **Control
      groups** (cgroups) are the kernel's answer: a group of processes, a few
      files that hold its limits, and the kernel enforcing them.

      We start a process that only burns CPU, cap it at 20 % of one CPU, and
      watch the kernel hold it there. Then memory, then the number of processes.
  zh: 第 05 课把进程关进了 Namespace：它只看得见自己的世界。可是没有任何东西能阻止它
      吃光*宿主机*的资源——所有 CPU、所有内存、想开多少进程就开多少。**控制组**
      （cgroups）就是内核给出的答案：一组进程，几个保存限制的文件，再由内核去执行。

      我们先启动一个只会空转消耗 CPU 的进程，把它限制在一个 CPU 的 20 %，看内核如何
      把它压在那里。然后是内存，再然后是进程数。

step "A busy loop, limited to 20 % of a CPU" / "一个死循环，限制在 20 % 的 CPU"
say:
  en: `while :; do :; done` never sleeps: left alone it takes a whole CPU.
      `--cpus 0.2` asks for one fifth of one CPU.
  zh: `while :; do :; done` 从不休息：不加限制时它会占满一整个 CPU。
      `--cpus 0.2` 表示只给它五分之一个 CPU。
run -d --name hog --cpus 0.2 busybox sh -c 'while :; do :; done'
expect /^[0-9a-f]{64}$/
set PID = inspect --format '{{.State.Pid}}' hog
expect /^\d+$/

step "top: the loop stays under its share" / "top：死循环被压在它的份额之下"
say:
  en: `top` samples every process twice, one second apart (`-bn2 -d1`), and
      prints how much CPU each used in between. We keep the second sample.
  zh: `top` 隔一秒对每个进程采样两次（`-bn2 -d1`），算出每个进程在这段时间里用了多少
      CPU。`awk` 只留下第二次采样的表头和那个循环。
exec hog sh -c "top -bn2 -d1 | awk '/^Mem:/ {n++} n == 2 && /^ *(PID|1) /'"
expect /^\s*PID\s+PPID\s+USER\s+STAT\s+VSZ\s+%VSZ\s+(CPU\s+)?%CPU\s+COMMAND/
expect /^\s*1\s+0\s+root\s+R\s+\d+\s+\d+%\s+(\d+\s+)?([0-9]|1\d|2[0-2])% sh -c while :; do :; done$/
say:
  en: Without a limit the loop would show 100 % of a CPU. Busybox's `top`
      divides by *all* the machine's CPUs, so on a machine with two CPUs the
      loop's 20 % of one CPU shows as about 10 %. The cgroup's own counters,
      next, say it exactly.
  zh: 如果没有限制，这个循环会显示占用 100 % 的 CPU。busybox 的 `top` 是按机器上*全部*
      CPU 来算百分比的，所以在两个 CPU 的机器上，一个 CPU 的 20 % 会显示成 10 % 左右。
      接下来看 cgroup 自己的计数器，它给出的是精确的数字。

step "cpu.stat: the kernel throttles it" / "cpu.stat：内核在给它“限流”"
say:
  en: The limit is a **quota** of CPU time per **period**: 20 ms in every
      100 ms. Once the group has used its 20 ms, the kernel takes it off the
      CPU until the next period begins, and counts one more *throttled*
      period in `cpu.stat`. This helper reads the counters twice, two seconds
      apart.
  zh: 这个限制是每个**周期**（period）里的 CPU 时间**配额**（quota）：每 100 ms 里
      只能用 20 ms。这一组进程一旦用完 20 ms，内核就把它从 CPU 上拿下来，直到下一个
      周期开始，并在 `cpu.stat` 里记下一次*被限流*（throttled）的周期。下面这个小脚本
      隔两秒读两次这些计数器。
!sh cgroup-cpu.sh $PID 2
expect /^limit: (cpu\.cfs_quota_us = 20000, cpu\.cfs_period_us = 100000|cpu\.max = 20000 100000)$/
expect /nr_periods \+(1[89]|2[0-2]), nr_throttled \+(1[5-9]|2[0-2])$/
expect /≈ (1[6-9]|2[0-4])% of one CPU$/
say:
  en: Two seconds are twenty periods, and the loop was throttled in almost
      every one of them: it always wants more than its quota. Its CPU time is
      about 400 ms of the 2000 ms: 20 %, exactly what we asked for.
  zh: 两秒就是二十个周期，而这个循环几乎在每个周期里都被限流了：它想要的总是比配额多。
      它得到的 CPU 时间大约是 2000 ms 里的 400 ms，也就是 20 %，正是我们要求的。

step "cgroup set: change the limit of a running container" / "cgroup set：修改运行中容器的限制"
say:
  en: The limit is only a number in a file, so it can change while the
      container runs (`docker update` does this). `cgroup show` lists the files;
      `cgroup set` writes new values.
  zh: 限制只是文件里的一个数字，所以容器运行时也能修改（`docker update` 做的就是这件事）。
      `cgroup show` 列出这些文件，`cgroup set` 写入新的值。
cgroup set hog cpus=0.5
expect /(cpu\.cfs_quota_us|cpu\.max) = 50000/
!sh cgroup-cpu.sh $PID 2
expect /≈ (4[5-9]|5[0-5])% of one CPU$/
say:
  en: Same process, never restarted, now at half a CPU.
  zh: 还是同一个进程，没有重启，现在得到了半个 CPU。

step "Where the limit lives: the cgroup filesystem" / "限制放在哪里：cgroup 文件系统"
say:
  en: `/proc/PID/cgroup` tells which group a process belongs to. The groups
      are directories of a special filesystem mounted under `/sys/fs/cgroup`.
      Which directory depends on who owns that tree, and cshell, like runc, has
      two drivers for it. Where systemd is PID 1 (the course's Vagrant VM),
      systemd owns the tree: cshell asks it for a scope per container,
      `cshell.slice/cshell-<id12>.scope`, whose subtree systemd hands over:
      the shim goes into its `shim/`, the container into `container/`, where
      the limits are written (runc's **systemd** driver). Without systemd (or
      with `CSHELL_CGROUP_DRIVER=cgroupfs`), cshell makes a plain directory,
      `cshell/<its id>` (runc's **cgroupfs** driver). `cat` below shows which.
  zh: `/proc/PID/cgroup` 说明一个进程属于哪个组。这些组就是挂载在 `/sys/fs/cgroup`
      下的一个特殊文件系统里的目录。放在哪个目录，要看这棵树归谁管；cshell 和 runc
      一样有两种驱动。systemd 是 1 号进程时（比如课程的 Vagrant 虚拟机），这棵树归
      systemd 管：cshell 请 systemd 为每个容器建一个 scope，
      `cshell.slice/cshell-<ID 前 12 位>.scope`，systemd 把它下面的子树交给 cshell：
      shim 进入其中的 `shim/`，容器进入 `container/`，限制就写在那里（runc 的
      **systemd** 驱动）。没有 systemd 时（或设置了 `CSHELL_CGROUP_DRIVER=cgroupfs`），
      cshell 自己建一个普通目录 `cshell/<容器 ID>`（runc 的 **cgroupfs** 驱动）。
      下面的 `cat` 显示的是哪一种。
!cat /proc/$PID/cgroup
expect /(cshell\/[0-9a-f]{64}|cshell-[0-9a-f]{12}\.scope\/container)$/
cgroup show hog
expect /(cpu\.cfs_quota_us|cpu\.max) = (50000|"?50000 100000"?)/
reality:
  en: The articles of 2018 show **cgroup v1**: one tree per controller
      (`/sys/fs/cgroup/cpu/…`, `/sys/fs/cgroup/memory/…`), a line per tree in
      `/proc/PID/cgroup`, and files like `cpu.cfs_quota_us` and
      `memory.limit_in_bytes`. Debian 11+, Ubuntu 21.10+ and Fedora 31+ boot with
      **cgroup v2**: a single tree, one line `0::/cshell/<id>`, and the same
      limits in `cpu.max` ("20000 100000") and `memory.max`. The output above
      shows which one *your* machine has; cshell speaks both.
  zh: 2018 年的文章展示的是 **cgroup v1**：每个控制器一棵树（`/sys/fs/cgroup/cpu/…`、
      `/sys/fs/cgroup/memory/…`），`/proc/PID/cgroup` 里每棵树一行，文件名是
      `cpu.cfs_quota_us`、`memory.limit_in_bytes` 这样的。Debian 11+、Ubuntu 21.10+
      和 Fedora 31+ 默认使用 **cgroup v2**：只有一棵树，只有一行 `0::/cshell/<id>`，
      同样的限制写在 `cpu.max`（"20000 100000"）和 `memory.max` 里。上面的输出显示了
      *你的*机器用的是哪一种；cshell 两种都支持。
say:
  en: Inside, the container sees its own group as the root (its **cgroup
      namespace**), read-only: it can read its limits, not raise them.
  zh: 在容器里面，它把自己的组看成根（这是它的 **cgroup Namespace**），而且是只读的：
      它能读到自己的限制，却不能提高它们。
exec hog cat /proc/self/cgroup
expect /::\/$/
exec hog sh -c 'f=$(find /sys/fs/cgroup -name pids.max); { echo max > $f; } 2>&1 || echo refused'
expect refused

step "A memory limit, and the OOM killer" / "内存限制与 OOM killer"
say:
  en: A memory limit works differently from a CPU limit. CPU time can be made
      to wait; memory cannot be taken back. When a group reaches its limit
      and nothing can be reclaimed, the kernel's **OOM killer** kills a process
      of that group — only of that group. `tail /dev/zero` makes a good hog:
      it looks for the end of a line in an endless stream of zero bytes, and
      keeps all of it in memory.
  zh: 内存限制和 CPU 限制不一样。CPU 时间可以让进程等一等，内存却没法收回。当一个组
      用到上限、又没有可回收的内存时，内核的 **OOM killer** 就会杀掉这个组里的一个进程——
      只在这个组里挑。`tail /dev/zero` 是个很好的“内存大户”：它在一串无穷无尽的零字节里
      寻找行尾，并把读到的一切都留在内存里。
run --name memhog --memory 32m busybox sh -c 'tail /dev/zero'
expect-status 137
ps -a
expect /memhog\s*$/
expect /Exited \(137\)/
inspect --format '{{.State.OOMKilled}} {{.State.ExitCode}}' memhog
expect true 137
say:
  en: 137 is 128 + 9: the process died of signal 9, SIGKILL, and `inspect`
      records that it was the OOM killer. The host, and every other
      container, did not notice.
  zh: 137 等于 128 + 9：进程死于 9 号信号 SIGKILL，而 `inspect` 记下了这是 OOM killer
      干的。宿主机和其他容器都毫无察觉。

step "Memory use, near the limit" / "内存用量，贴着上限"
say:
  en: A container that stays up, with the same 32 MB limit. A hog started in it
      with `exec` dies alone; the container's PID 1 lives on, and the group
      remembers the kill.
  zh: 再启动一个一直运行的容器，同样限制 32 MB。在它里面用 `exec` 启动的内存大户会被
      单独杀掉；容器的 1 号进程安然无恙，而这个组记下了这次查杀。
run -d --name box --memory 32m --pids-limit 10 busybox sleep 600
exec box sh -c 'tail /dev/zero'
expect-status 137
ps
expect /Up .*\bbox\s*$/
cgroup show box
expect /(memory\.limit_in_bytes|memory\.max) = 33554432/
expect /(memory\.max_usage_in_bytes|memory\.peak): 3[0-3]\d{6}$/
expect /oom_kill[=: ]1\b/
say:
  en: The peak usage went right up to the limit, 33554432 bytes (32 MB),
      then the kernel killed the biggest process of the group.
  zh: 峰值用量一直涨到上限 33554432 字节（32 MB），然后内核杀掉了组里最大的那个进程。

step "pids.max: a fork loop hits the wall" / "pids.max：fork 循环撞上了墙"
say:
  en: The same container has `--pids-limit 10`. A loop that starts background
      processes one after another gets an error from `fork()` once the group
      holds ten. A real fork bomb would stop at the same wall, instead of
      filling the host's process table.
  zh: 同一个容器还带着 `--pids-limit 10`。一个不停在后台启动新进程的循环，在组里
      满十个进程时就会从 `fork()` 得到错误。真正的 fork 炸弹也会停在这堵墙前，而不会
      塞满宿主机的进程表。
exec box sh -c 'n=0; while [ $n -lt 50 ]; do sleep 600 >/dev/null 2>&1 & n=$((n + 1)); done'
expect-status 2
expect /can't fork: Resource temporarily unavailable/
cgroup show box
expect /pids\.max = 10$/
expect /pids\.events: .*max [1-9]/
say:
  en: The loop got `EAGAIN` from `fork()` ("Resource temporarily unavailable")
      and its shell gave up; the `max` counter in `pids.events` counts each
      refused `fork()`. The sleeping processes it did start stay in the group
      until the container is removed. On the host everything goes on as usual.
  zh: 循环从 `fork()` 得到了 `EAGAIN`（“Resource temporarily unavailable”），
      它的 shell 只好放弃；`pids.events` 里的 `max` 计数记下了每一次被拒绝的 `fork()`。
      已经启动的那些 sleep 进程会一直留在组里，直到容器被删除。宿主机上一切照旧。

step "Limits, not walls around the view" / "限制资源，而不是隔离视图"
say:
  en: One last look. Inside the limited container, `/proc/meminfo` still
      reports the host's memory, not 32 MB: cgroups limit, namespaces hide,
      and `/proc` belongs to neither. Programs that size themselves from
      `/proc/meminfo` (some JVMs, databases) must be told their limit.
  zh: 最后再看一眼。在受限的容器里，`/proc/meminfo` 报告的仍然是宿主机的内存，
      而不是 32 MB：cgroups 负责限制，Namespace 负责隐藏，而 `/proc` 两者都不归。
      那些根据 `/proc/meminfo` 决定自己用多少内存的程序（一些 JVM、数据库），必须
      明确告诉它们自己的上限。
!awk '/^MemTotal/ {print $2}' /proc/meminfo
capture HOSTMEM = /^(\d+)$/
run --rm --memory 32m busybox awk '/^MemTotal/ {print $2}' /proc/meminfo
expect /^$HOSTMEM$/
reality:
  en: LXCFS can show a container a `/proc/meminfo` that matches its limits;
      Docker does not use it by default, nor does cshell.
  zh: LXCFS 可以让容器看到与它的限制一致的 `/proc/meminfo`；Docker 默认不用它，
      cshell 也不用。
say:
  en: Namespaces (lesson 05) and cgroups (today) are two of the three pieces.
      The third is the files a container finds at `/`: lesson 07.
  zh: Namespace（第 05 课）和 cgroups（今天）是三块拼图中的两块。第三块是容器在 `/`
      下看到的那些文件：第 07 课。
