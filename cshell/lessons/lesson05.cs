# Lesson 05: namespaces. A container's process is PID 1 inside and an ordinary
# process outside; pid, mnt, uts, net and ipc each give it a world of its own.
# Reconstructed from what the series' later articles recall; the words are ours.
#
#   cshell --script lesson05.cs [--step | --fast] [--lang zh|en] [--from STEP]

title en: Lesson 05 · Namespaces: a process that sees only its own world
title zh: 第 05 课 · Namespace：只看得见自己世界的进程

say:
  en: A container is not a small machine. It is one ordinary process that the
      kernel shows a *restricted view* of the system: its own process numbers,
      its own mounts, its own hostname, its own network, its own IPC objects.
      Each of these views is a **namespace**. We start one container and check
      every one of them from both sides.
  zh: 容器不是一台小机器。它只是一个普通进程，内核只给它看系统的*一部分*：
      它自己的进程编号、自己的挂载、自己的主机名、自己的网络、自己的 IPC 对象。
      每一种“视图”就是一个 **Namespace**。我们启动一个容器，从里外两边逐个检查。

step "One container, one process" / "一个容器，一个进程"
run -d --name box busybox sleep 600
expect /^[0-9a-f]{64}$/
ps
expect /"sleep 600"/
capture SHORT = /^([0-9a-f]{12})\s+busybox\s/

step "PID 1 inside" / "在里面是 1 号进程"
say:
  en: Inside, `ps` lists the processes of the container's **pid namespace**:
      `sleep` is number 1, the first process of its own little process tree.
  zh: 在容器里，`ps` 列出的是容器 **PID Namespace** 里的进程：`sleep` 是 1 号进程，
      是它自己那棵小小进程树的第一个进程。
exec box ps
expect /^\s*1 root\s+sleep 600$/
say:
  en: Counting the processes each side can see makes the difference plain:
      the host has dozens or hundreds; the container sees two: `sleep`, its
      PID 1, and the shell doing the counting.
  zh: 数一数两边各自能看到多少进程，差别就一目了然了：宿主机上有几十上百个，
      容器里只有两个：1 号进程 `sleep`，和正在数数的这个 shell。
!ls -d /proc/[0-9]* | wc -l
capture HOST_PROCS = /(\d+)/
exec box sh -c 'set -- /proc/[0-9]*; echo "$# processes: $*"'
expect /^2 processes: \/proc\/1 \/proc\/\d+$/

step "An ordinary PID outside" / "在外面是个普通进程"
say:
  en: The host numbers the very same process differently. `inspect` tells the
      host's number; the host's own `ps` shows it like any other process.
  zh: 宿主机给同一个进程编的是另一个号。`inspect` 告诉我们宿主机上的编号；宿主机自己的
      `ps` 把它当作普通进程列出来。
set PID = inspect --format '{{.State.Pid}}' box
expect /^\d+$/
!ps -o pid=,user=,args= -p $PID
expect /^\s*$PID\s+root\s+sleep 600$/
say:
  en: One process, two numbers: `$PID` for the host, 1 for itself. The kernel
      translates between the namespaces.
  zh: 一个进程，两个编号：对宿主机来说是 `$PID`，对它自己来说是 1。内核负责在两个
      Namespace 之间翻译。

step "Namespaces are files: /proc/PID/ns" / "Namespace 是文件：/proc/PID/ns"
!ls -l /proc/$PID/ns
expect /pid -> pid:\[\d+\]/
say:
  en: Each link names one namespace by its inode number. `ns ls` puts the host
      and the container side by side; `=` marks what they share.
  zh: 每个链接用 inode 号指明一个 Namespace。`ns ls` 把宿主机和容器并排列出，`=`
      标出它们共用的那些。
ns ls host box
expect /= user:\[\d+\]/
expect /uts:\[\d+\]/
reality:
  en: The 2018 articles list six namespaces. Kernels since 4.6 add `cgroup`, and
      since 5.6 `time`. cshell gives containers their own cgroup namespace (so
      does Docker on cgroup v2 hosts) and, as Docker does by default, leaves
      `time` and `user` shared with the host.
  zh: 2018 年的文章里列了六种 Namespace。4.6 以后的内核多了 `cgroup`，5.6 以后又多了
      `time`。cshell 给容器单独的 cgroup Namespace（Docker 在 cgroup v2 的机器上也是
      这样）；并且和 Docker 的默认做法一样，让 `time` 和 `user` 与宿主机共用。

step "mnt: its own root and its own mounts" / "mnt：自己的根目录和挂载"
say:
  en: In its **mount namespace** the container's `/` is an overlay mount, and
      nothing it mounts or writes at `/` shows up on the host.
  zh: 在它的 **Mount Namespace** 里，容器的 `/` 是一个 overlay 挂载；它在 `/` 下的
      挂载和写入，宿主机都看不到。
exec box grep ' / / ' /proc/self/mountinfo
expect /^\S+ \S+ \S+ \/ \/ .* - overlay overlay /
exec box touch /made-inside.txt
!test -e /made-inside.txt && echo "on the host too" || echo "not on the host"
expect not on the host
layer diff box
expect A /made-inside.txt

step "uts: its own hostname" / "uts：自己的主机名"
say:
  en: The **UTS namespace** holds the hostname. The container starts with its
      short id, set by the runtime in the container's own UTS namespace.
  zh: **UTS Namespace** 保存主机名。容器一开始的主机名是它的短 ID，是运行时在容器
      自己的 UTS Namespace 里设置的。
exec box hostname
expect $SHORT
say:
  en: Even root inside may not change it, though: `sethostname(2)` needs the
      `CAP_SYS_ADMIN` capability, which cshell, like Docker, takes away from
      containers.
  zh: 不过，就算是容器里的 root 也改不了它：`sethostname(2)` 需要 `CAP_SYS_ADMIN`
      这项能力（capability），而 cshell 和 Docker 一样，把它从容器里拿掉了。
exec box hostname lesson05-box
expect-status 1
expect Operation not permitted
say:
  en: Given that capability, a container changes the hostname of its own UTS
      namespace — and the host keeps its own. The usual way is simply to choose
      it at start, with `-h`.
  zh: 给了这项能力，容器就能修改它自己那个 UTS Namespace 里的主机名——宿主机的主机名
      保持不变。更常见的做法，是在启动时直接用 `-h` 指定它。
run --rm --cap-add SYS_ADMIN busybox sh -c 'hostname lesson05-box && hostname'
expect lesson05-box
set HOST_NAME = !hostname
expect-not lesson05-box
run --rm -h chosen-name busybox hostname
expect chosen-name

step "net: its own network stack" / "net：自己的网络栈"
say:
  en: The host's first network interface, and its hardware address:
  zh: 宿主机的第一块网卡，以及它的硬件地址：
set HOSTIF = !ip -o link show | awk -F'[ :@]+' 'NR == 2 {print $2}'
!cat /sys/class/net/$HOSTIF/address
capture HOSTMAC = /([0-9a-f]{2}(?::[0-9a-f]{2}){5})/
say:
  en: The container's **network namespace** has its own loopback (and its own
      `eth0` when it is on a bridge), its own routes and ports, and none of the
      host's interfaces.
  zh: 容器的 **Network Namespace** 有它自己的回环网卡（连在网桥上时还有自己的 `eth0`）、
      自己的路由和端口，宿主机的网卡一块都没有。
exec box ip -o link
expect /^1: lo:/
expect-not $HOSTMAC
exec box ip -o -4 addr
expect /^1: lo\s+inet 127\.0\.0\.1\//

step "ipc: its own message queues" / "ipc：自己的消息队列"
say:
  en: System V message queues, semaphores and shared memory belong to an **IPC
      namespace**. We create a queue in the container's, using the host's
      `ipcmk` moved there with `ns join` — the host's list stays without it.
  zh: System V 的消息队列、信号量和共享内存都属于 **IPC Namespace**。我们用 `ns join`
      把宿主机的 `ipcmk` 放进容器的 IPC Namespace，在那里创建一个队列——宿主机的列表里
      不会出现它。
requires !ipcmk
ns join box --ns ipc -- ipcmk -Q
expect /Message queue id: \d+/
ns join box --ns ipc -- ipcs -q
capture QKEY = /^(0x[0-9a-f]+)\s/
!ipcs -q
expect-not $QKEY
say:
  en: The queue disappears with the namespace, when the container's last process
      ends: nothing is left on the host to clean up.
  zh: 这个队列会随着 Namespace 一起消失，也就是在容器最后一个进程结束时；宿主机上不会
      留下任何需要清理的东西。

step "user: shared, so root is root" / "user：共用，所以 root 就是 root"
say:
  en: Like Docker by default, cshell gives containers no **user namespace**:
      uid 0 inside is uid 0 on the host. Isolation comes from the other
      namespaces, capabilities and cgroups, not from a different user.
  zh: 和 Docker 的默认设置一样，cshell 不给容器单独的 **User Namespace**：容器里的
      uid 0 就是宿主机上的 uid 0。隔离靠的是其他 Namespace、capabilities 和 cgroups，
      而不是换一个用户。
exec box id
expect uid=0(root)
!ps -o user= -p $PID
expect root

step "A wall, not a machine" / "是一堵墙，不是一台机器"
say:
  en: Everything we saw was one `sleep` process with a few namespaces around it.
      `ns join` and `exec` walk through those walls with `setns(2)`, and the
      next lessons add what namespaces do not give: **limits** (cgroups, lesson
      06) and a **root filesystem** of its own (lesson 07).
  zh: 我们看到的一切，只是一个 `sleep` 进程和包围它的几个 Namespace。`ns join` 和
      `exec` 用 `setns(2)` 穿过这些墙。接下来的课程会补上 Namespace 给不了的东西：
      **资源限制**（cgroups，第 06 课）和它自己的**根文件系统**（第 07 课）。
ns ls box
expect /net:\[\d+\]/
