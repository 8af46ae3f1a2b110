# Lesson 08: a whole container, taken apart with the tools of lessons 05-07.
# It follows the order of the 2018 article "白话容器基础（四）：重新认识Docker容器"
# (re-understanding the Docker container); the narration is our own.
#
#   cshell --script lesson08.cs [--step | --fast] [--lang zh|en] [--from STEP] [--typing]
#
# Steps that need a feature cshell does not have yet carry a `requires` line:
# they are skipped, with a note, until the command or flag exists.

title en: Lesson 08 · The Docker container, seen again from the inside
title zh: 第 08 课 · 重新认识容器：从里面再看一遍

cd app

say:
  en: Lessons 05 to 07 took a container apart into three ideas: **namespaces**
      decide what a process can see, **cgroups** decide how much it may use,
      and a **layered root filesystem** decides which files it finds. Today we
      put the pieces back together with one small web app: we build its image,
      run it, change it, publish it, and then look at the running container
      with nothing but the host's own tools.

      Every command below really runs. After each one the lesson checks what
      you should have seen, so if your machine behaves differently, it stops
      and shows you where.
  zh: 第 05 到 07 课把容器拆成了三样东西：**Namespace** 决定进程能看见什么，
      **Cgroups** 决定它能用多少资源，**分层的根文件系统**决定它能找到哪些文件。
      今天我们用一个小小的 Web 应用把它们重新拼起来：构建镜像、运行、修改、发布，
      然后只用宿主机自带的工具去观察这个正在运行的容器。

      下面每条命令都会真的执行。每一步之后，课程都会检查你应该看到的结果；
      如果你的机器表现不同，课程会停下来告诉你哪里不一样。

step "The app: three files and a Dockerfile" / "应用：三个文件和一个 Dockerfile"
say:
  en: The lesson runs inside its own folder. The app is a page that says hello
      and tells which machine answered: its **hostname**. The article used a
      Flask app on `python:2.7-slim`; here the same page is served by busybox's
      `httpd`, so the lesson needs nothing from the internet. (`-I` hides
      Python's cache folder; `.dockerignore` keeps it out of the image too.)
  zh: 课程在它自己的目录里运行。这个应用只有一个页面：打个招呼，再报出是哪台“机器”
      在回答——也就是它的 **hostname**。原文用的是基于 `python:2.7-slim` 的 Flask
      应用；这里由 busybox 的 `httpd` 提供同样的页面，所以整节课不需要联网。
      （`-I` 隐藏了 Python 的缓存目录；`.dockerignore` 也会把它挡在镜像之外。）
!ls -I __pycache__
expect Dockerfile.busybox
expect app.sh
!cat Dockerfile.busybox
expect /^FROM busybox$/
expect /^CMD \["sh", "\/app\/app.sh"\]$/
!cat app.sh
expect /exec httpd -f -p 80/
reality:
  en: `python:2.7-slim` is retired: Python 2 reached its end in 2020, and the
      image gets no updates. The Flask twin of this app is here too: `app.py`,
      `requirements.txt` and `Dockerfile` (`FROM python:3.11-slim`). With
      internet, `build --network host -t helloworld:py .` builds it from the real
      image; offline, cshell makes a local stand-in for `python:3.11-slim` from
      Debian packages the first time (about a minute), and says so once.
  zh: `python:2.7-slim` 已经退役：Python 2 在 2020 年停止维护，这个镜像也不再更新。
      这个应用的 Flask 版本也在这里：`app.py`、`requirements.txt` 和 `Dockerfile`
      （`FROM python:3.11-slim`）。联网时，`build --network host -t helloworld:py .`
      会用真正的镜像构建它；离线时，cshell 第一次会用 Debian 软件包在本地做一个
      `python:3.11-slim` 的替身（大约一分钟），并且只提示一次。

step "build: one layer per instruction" / "build：每条指令一层"
say:
  en: `build` reads the Dockerfile from top to bottom. Each instruction starts
      from the image the previous one left and produces a new one. A `RUN`
      really starts a container on the layers so far; whatever that container
      wrote becomes the next layer.
  zh: `build` 从上到下读 Dockerfile。每条指令都从上一条留下的镜像出发，产生一个新镜像。
      `RUN` 会真的在已有的层上启动一个容器，容器写下的内容就成为下一层。
build -t helloworld -f Dockerfile.busybox .
expect /Step 7\/7 : CMD \["sh", "\/app\/app.sh"\]/
expect Successfully tagged helloworld:latest
history helloworld
expect /<empty>.*ENV NAME=World/
expect /<empty>.*EXPOSE 80/
expect /^[0-9a-f]{12} .*mkdir -p \/app\/www/
say:
  en: Read the history from the bottom up. `ADD` and `RUN` changed files, so
      their rows have a size and a layer id. `WORKDIR`, `EXPOSE`, `ENV` and
      `CMD` only changed the image's settings: their rows say **`<empty>`** and
      **0B**. They are still steps of their own, with a line in the history —
      a layer with nothing in it.
  zh: 从下往上读这段历史。`ADD` 和 `RUN` 改动了文件，所以它们有大小，也有层 ID。
      `WORKDIR`、`EXPOSE`、`ENV` 和 `CMD` 只改了镜像的配置，它们那一行写着
      **`<empty>`** 和 **0B**。但它们依然各自是一步，在历史里占一行——只是一层
      什么文件都没有的“空层”。
reality:
  en: Docker's classic builder shows these settings-only steps as `#(nop)`, as
      above. Today's Docker builds with BuildKit, whose output hides them; `docker
      history` still lists them with 0B. And the layers no longer live under
      `/var/lib/docker/aufs`: aufs never entered the mainline kernel and Docker
      has dropped it; Docker (like cshell) stacks layers with **overlayfs**.
  zh: Docker 的经典构建器把这些只改配置的步骤显示成 `#(nop)`，就像上面这样。
      如今的 Docker 默认用 BuildKit 构建，输出里看不到它们，但 `docker history`
      依然会以 0B 列出。另外，层也不再放在 `/var/lib/docker/aufs` 下了：aufs 从未
      进入主线内核，Docker 也已放弃它；Docker（和 cshell 一样）用 **overlayfs** 叠加各层。

step "images: the image and its id" / "images：镜像和它的 ID"
images
expect /^helloworld\s+latest\s+[0-9a-f]{12}/
capture IMAGE_ID = /^helloworld\s+latest\s+([0-9a-f]{12})/
say:
  en: The IMAGE ID is the start of the sha256 of the image's configuration.
      Same content, same id — on any machine.
  zh: IMAGE ID 是镜像配置内容的 sha256 的前几位。内容相同，ID 就相同，在哪台机器上都一样。

step "run: the container starts the image's CMD" / "run：容器运行镜像里的 CMD"
say:
  en: Nothing follows the image's name, so the container runs the `CMD` from
      the Dockerfile. `-d` leaves it in the background and prints its id.
  zh: 镜像名后面什么都没写，所以容器运行的是 Dockerfile 里的 `CMD`。`-d` 让它在后台
      运行，并打印出它的 ID。
run -d --name hello helloworld
expect /^[0-9a-f]{64}$/
inspect --format '{{json .Config.Cmd}}' helloworld
expect ["sh","/app/app.sh"]
say:
  en: Words after the image replace that `CMD` for this one container. The
      `WORKDIR` of the Dockerfile still holds: the command starts in `/app`.
  zh: 写在镜像名后面的命令会替换这个容器的 `CMD`。Dockerfile 里的 `WORKDIR`
      仍然有效：命令从 `/app` 开始运行。
run --rm helloworld sh -c 'echo "my own command instead of the CMD, started in $(pwd)"'
expect my own command instead of the CMD, started in /app
reality:
  en: The article says Docker wraps the command in an implicit `/bin/sh -c`.
      That is true only for the *shell form* (`CMD python app.py`). The JSON
      *exec form* used here and in the article's Dockerfile,
      `CMD ["python", "app.py"]`, starts the program directly: it is the
      container's PID 1, with no shell above it.
  zh: 原文说 Docker 会在命令前隐式加上 `/bin/sh -c`。这只对 *shell 形式*
      （`CMD python app.py`）成立。这里和原文 Dockerfile 用的 JSON *exec 形式*
      `CMD ["python", "app.py"]` 会直接启动程序：它就是容器里的 1 号进程，
      上面没有 shell。

step "ps: the running container" / "ps：正在运行的容器"
ps
expect /"sh \/app\/app.sh"/
expect /\bhello\s*$/
capture SHORT = /^([0-9a-f]{12})\s+helloworld\s/
say:
  en: The first column is the short id: the first 12 of the 64 hex digits that
      `run -d` printed. Remember it: `$SHORT`.
  zh: 第一列是短 ID：`run -d` 打印的 64 位十六进制数的前 12 位。记住它：`$SHORT`。

step "The page, from inside the container's network" / "在容器自己的网络里访问页面"
say:
  en: Ask the server from inside the container itself, on its own loopback.
      The hostname in the page is the container's short id: the runtime set it
      in the container's **UTS namespace**.
  zh: 先在容器内部、通过它自己的回环地址访问服务器。页面里的 hostname 正是容器的
      短 ID：这是运行时在容器的 **UTS Namespace** 里设置的。
exec hello wget -qO- http://127.0.0.1:80
expect <h3>Hello World!</h3><b>Hostname:</b> $SHORT<br/>

step "-p 4000:80: the page on the host's port 4000" / "-p 4000:80：宿主机 4000 端口上的页面"
say:
  en: To reach the app from the host, publish the container's port 80 on the
      host's port 4000, as the article does, and fetch the page with `curl`.
  zh: 想从宿主机访问这个应用，就像原文那样把容器的 80 端口发布到宿主机的 4000 端口，
      再用 `curl` 取回页面。
requires run -p (issue #5)
requires !curl
run -d -p 4000:80 --name web helloworld
wait-for /Hello World!/ --timeout 10 -- !curl -s http://127.0.0.1:4000
expect /<b>Hostname:<\/b> [0-9a-f]{12}<br\/>/
say:
  en: Without the port mapping you can still ask the container directly, at
      its own address on the bridge, port 80.
  zh: 即使没有端口映射，也可以直接访问容器在网桥上的地址的 80 端口。
set IP = inspect --format '{{.NetworkSettings.IPAddress}}' web
!curl -s http://$IP:80
expect <h3>Hello World!</h3>
reality:
  en: By default Docker answers `localhost:4000` through a userland proxy
      (`docker-proxy`). cshell does what Docker does with that proxy turned off
      (`"userland-proxy": false`): iptables DNAT rules send the host port to the
      container's address. `net inspect web` shows them.
  zh: Docker 默认通过用户态代理（`docker-proxy`）来响应 `localhost:4000`。cshell
      采用的是 Docker 关掉这个代理（`"userland-proxy": false`）时的做法：用 iptables
      的 DNAT 规则把宿主机端口转到容器的地址上。`net inspect web` 可以看到这些规则。

step "tag: a full name for a registry" / "tag：给镜像起一个完整的名字"
say:
  en: A registry name has the form `account/name:version`. `tag` adds a name;
      it copies nothing.
  zh: 镜像仓库里的名字形如 `账户/名字:版本`。`tag` 只是多加一个名字，不复制任何东西。
tag helloworld geektime/helloworld:v1
images
expect /^geektime\/helloworld\s+v1\s+$IMAGE_ID/
expect /^helloworld\s+latest\s+$IMAGE_ID/

step "push, to a registry of our own" / "push：推送到我们自己的镜像仓库"
say:
  en: Instead of Docker Hub, we start a private registry for this lesson: Docker's
      own registry server, listening on 127.0.0.1. A name that begins with a
      host and port says which registry the image goes to.
  zh: 我们不用 Docker Hub，而是为这节课启动一个私有镜像仓库：Docker 自己的 Registry
      服务，只监听 127.0.0.1。名字以“主机:端口”开头时，就说明镜像要推到哪个仓库。
requires push (issue #4)
requires !docker-registry
requires !curl
set REGISTRY = !sh ../registry.sh start $LESSON_TMP/registry
tag geektime/helloworld:v1 $REGISTRY/geektime/helloworld:v1
push $REGISTRY/geektime/helloworld:v1
expect /^v1: digest: sha256:[0-9a-f]{64} size: \d+$/
!curl -s http://$REGISTRY/v2/geektime/helloworld/tags/list
expect "v1"
reality:
  en: Pushing to Docker Hub needs an account and `login`; `geektime` is the
      article's account, so use yours. Companies run their own registry, as we
      just did (Docker Registry, or Harbor with users and scanning on top).
  zh: 推送到 Docker Hub 需要账号并先 `login`；`geektime` 是原文作者的账号，做实验时
      请换成你自己的。企业通常自建镜像仓库，就像我们刚才做的那样（Docker Registry，
      或在它之上加了用户管理和扫描的 Harbor）。

step "exec + commit: change a running container, keep the change" / "exec 与 commit：修改运行中的容器并保存"
say:
  en: `exec` starts a new process *inside* the running container. Here it
      creates `test.txt` in the working directory, `/app`.
  zh: `exec` 在运行中的容器*里面*启动一个新进程。这里它在工作目录 `/app` 里创建
      `test.txt`。
exec hello touch test.txt
exec hello ls
expect test.txt
layer diff hello
expect A /app/test.txt
expect-not /etc/host
say:
  en: The new file sits in the container's **rw layer** (overlayfs' upper
      directory); the image's layers below did not change. `commit` packs that
      rw layer into one more layer on top of the image's, and names the result.
  zh: 新文件落在容器的**可读写层**（overlayfs 的 upper 目录）里，下面镜像的各层没有
      任何变化。`commit` 把这个可读写层打包成新的一层，叠在原镜像各层之上，
      再给结果起个名字。
commit hello geektime/helloworld:v2
expect /^sha256:[0-9a-f]{64}$/
run --rm geektime/helloworld:v2 ls /app
expect test.txt

step "The init layer: what commit leaves out" / "Init 层：commit 不会带走的东西"
say:
  en: The container's hostname is its short id. Where does `/etc/hostname`
      come from? Not from any layer: the runtime keeps the real file in the
      container's state directory and bind-mounts it over an empty placeholder
      in the **init layer**. So it never lands in the rw layer, and `commit`
      never keeps it.
  zh: 容器的 hostname 是它的短 ID。那么 `/etc/hostname` 从哪里来？不来自任何一层：
      运行时把真正的文件放在容器的状态目录里，再用 bind mount 盖在 **Init 层**里的
      空占位文件上。所以它永远不会进入可读写层，`commit` 也就不会把它带走。
exec hello cat /etc/hostname
expect $SHORT
layer whereis hello /etc/hostname
expect runtime bind mount
run --rm geektime/helloworld:v2 cat /etc/hostname
expect-not $SHORT

step "push v2: only the new layer travels" / "推送 v2：只有新的一层需要上传"
requires push (issue #4)
requires !docker-registry
requires !curl
tag geektime/helloworld:v2 $REGISTRY/geektime/helloworld:v2
push $REGISTRY/geektime/helloworld:v2
expect /Layer already exists|Mounted from/
expect /^v2: digest: sha256:[0-9a-f]{64}/
say:
  en: The registry already had the image's layers from v1, so only the
      committed layer and the new configuration were sent.
  zh: 仓库里已经有 v1 的各层了，所以只上传了 commit 出来的那一层和新的配置。

step "The container's process, seen from the host" / "从宿主机看容器的进程"
say:
  en: A container is a process on the host. `inspect` tells its PID as the
      host numbers it, and `/proc/PID/ns` holds one link per namespace the
      process is in.
  zh: 容器就是宿主机上的一个进程。`inspect` 给出宿主机视角下它的 PID，而
      `/proc/PID/ns` 里，这个进程所在的每个 Namespace 都对应一个链接。
set PID = inspect --format '{{.State.Pid}}' hello
expect /^\d+$/
!ls -l /proc/$PID/ns
expect /net -> net:\[\d+\]/
capture NETNS = /net -> net:\[(\d+)\]/
say:
  en: The number in `net:[…]` is the inode of that network namespace. Two
      processes showing the same number are in the same namespace.
  zh: `net:[…]` 里的数字就是这个网络 Namespace 的 inode 号。两个进程显示的数字相同，
      就说明它们在同一个 Namespace 里。
reality:
  en: Kernels since 5.6 also list `time` and `time_for_children`, which the
      article's 2018 listing does not have; containers usually share the host's.
  zh: 5.6 以后的内核还会列出 `time` 和 `time_for_children`，2018 年原文的列表里没有；
      容器通常和宿主机共用它们。

step "Join its network namespace: setns" / "加入它的网络 Namespace：setns"
say:
  en: First, one interface of the host, to compare with: its name and its
      hardware address.
  zh: 先记下宿主机的一块网卡作对照：它的名字和硬件地址。
set HOSTIF = !ip -o link show | awk -F'[ :@]+' 'NR == 2 {print $2}'
!ip -br link show dev $HOSTIF
capture HOSTMAC = /([0-9a-f]{2}(?::[0-9a-f]{2}){5})/
say:
  en: Now the host's own `ip` program, moved into the container's network
      namespace with **setns(2)**. That is what `ns join` does. It sees the
      container's loopback (and its `eth0`, when the container is on a
      bridge) — and none of the host's interfaces.
  zh: 现在让宿主机自己的 `ip` 程序用 **setns(2)** 进入容器的网络 Namespace，
      这正是 `ns join` 做的事。它看到的是容器的回环网卡（容器连在网桥上时，还有它的
      `eth0`），宿主机的网卡一块都看不到。
ns join hello --ns net -- ip -br link
expect /^lo\s/
expect-not $HOSTMAC
say:
  en: The article does the same with a dozen lines of C, `set_ns.c`: open
      `/proc/PID/ns/net`, call `setns()` on it, then `exec` a program. Here it
      is, compiled and run.
  zh: 原文用十几行 C 代码 `set_ns.c` 做了同样的事：打开 `/proc/PID/ns/net`，
      对它调用 `setns()`，然后 `exec` 一个程序。下面就编译并运行它。
requires !gcc
!cat ../set_ns.c
expect setns(fd, 0)
!gcc -o $LESSON_TMP/set_ns ../set_ns.c
!$LESSON_TMP/set_ns /proc/$PID/ns/net ip -br link
expect /^lo\s/
expect-not $HOSTMAC
!$LESSON_TMP/set_ns /proc/$PID/ns/net readlink /proc/self/ns/net
expect net:[$NETNS]
say:
  en: The last program asked for its *own* network namespace, and got the
      container's inode: after `setns()`, it shares the container's network.
  zh: 最后这个程序查看的是它*自己*的网络 Namespace，得到的却是容器的 inode：
      `setns()` 之后，它和容器共享同一个网络。
reality:
  en: `ifconfig` (net-tools) is missing on many current systems; `ip addr` and
      `ip -br link` show the same devices.
  zh: 如今很多系统上没有 `ifconfig`（net-tools）了；`ip addr` 和 `ip -br link`
      显示的是同样的网卡。

step "ns ls: the same inode, side by side" / "ns ls：并排对比 inode"
ns ls host hello
expect net:[$NETNS]
say:
  en: One column per process, one row per namespace kind. Where the host and
      the container show the same number (marked `=`), they share that
      namespace; everywhere else the container has its own.
  zh: 每个进程一列，每种 Namespace 一行。宿主机和容器数字相同的地方（标着 `=`）
      表示它们共用这个 Namespace；其余的，容器都有自己独立的一份。

step "--net container: and --net host" / "--net container: 与 --net host"
say:
  en: A new container can be started *inside* another one's network namespace
      instead of getting its own. The article runs `ifconfig` in it; `ip addr`
      shows the same thing.
  zh: 新容器也可以不要自己的网络 Namespace，而是直接加入另一个容器的。原文在里面运行
      `ifconfig`；`ip addr` 显示的是同样的内容。
requires run --net (issue #5)
run --rm --net container:hello busybox readlink /proc/self/ns/net
expect net:[$NETNS]
run --rm --net container:hello busybox ip -o -4 addr
expect /^1: lo\s+inet 127\.0\.0\.1\//
say:
  en: With `--net host` there is no network namespace of its own at all: the
      container uses the host's, with all its interfaces.
  zh: 用 `--net host` 时，容器根本没有自己的网络 Namespace，直接使用宿主机的，
      宿主机所有的网卡它都能看到。
set HOSTNET = !readlink /proc/self/ns/net
run --rm --net host busybox readlink /proc/self/ns/net
expect $HOSTNET
run --rm --net host busybox cat /sys/class/net/$HOSTIF/address
expect $HOSTMAC

step "Volumes: -v /test" / "数据卷：-v /test"
say:
  en: A volume is a host directory mounted into the container. With `-v /test`
      the runtime makes an anonymous one under its state directory.
  zh: 数据卷就是挂载进容器的一个宿主机目录。`-v /test` 会让运行时在自己的状态目录下
      创建一个匿名卷。
requires run -v (issue #6)
requires volume ls (issue #6)
run -d --name vol -v /test helloworld
volume ls
expect /[0-9a-f]{64}/
inspect --format '{{json .Mounts}}' vol
capture VOLDIR = /"Source": ?"([^"]+)"/
exec vol touch /test/text.txt
!ls $VOLDIR
expect text.txt
say:
  en: The file written in the container is in the volume's directory on the
      host. In the container's rw layer, `/test` is only an empty mount point,
      so a commit keeps the directory and not what is in it.
  zh: 在容器里写的文件出现在宿主机上卷的目录里。而在容器的可读写层里，`/test`
      只是一个空的挂载点，所以 commit 会保留这个目录，但不会保留里面的内容。
layer diff vol
expect /\/test$/
expect-not text.txt
commit vol geektime/helloworld:v3
run --rm geektime/helloworld:v3 ls -A /test
expect-not text.txt
reality:
  en: The article's paths, `/var/lib/docker/volumes/ID/_data` and
      `/var/lib/docker/aufs/mnt/…`, are Docker's. cshell keeps volumes under its
      own state root, `volumes/ID/_data`, and its rw layers under `containers/`.
  zh: 原文里的 `/var/lib/docker/volumes/ID/_data` 和 `/var/lib/docker/aufs/mnt/…`
      是 Docker 的路径。cshell 把卷放在它自己的状态根目录下的 `volumes/ID/_data`，
      可读写层放在 `containers/` 下。

step "A host directory: -v DIR:/test" / "宿主机目录：-v 目录:/test"
say:
  en: The article binds `/home`; we use a scratch directory, so nothing of
      yours is touched.
  zh: 原文绑定的是 `/home`；我们用一个临时目录代替，不会碰你自己的文件。
requires run -v (issue #6)
!mkdir -p $LESSON_TMP/home && echo from the host > $LESSON_TMP/home/hello.txt
run -d --name bindvol -v $LESSON_TMP/home:/test helloworld
exec bindvol ls /test
expect hello.txt
exec bindvol touch /test/text.txt
!ls $LESSON_TMP/home
expect text.txt
!grep -q ' /test ' /proc/self/mountinfo && echo "the host sees it" || echo "not in the host's mount table"
expect not in the host's mount table

step "Bind mount: a path pointed at another inode" / "绑定挂载：让路径指向另一个 inode"
say:
  en: What a volume really is: a **bind mount**. Mounting directory A over
      directory B makes the path B lead to A's inode; B's own content is hidden,
      not changed, and comes back on `umount`. We try it on the host, inside a
      private mount namespace (`unshare -m`), so the host's mount table never
      sees it — exactly like a container's mounts.
  zh: 数据卷的本质就是**绑定挂载**。把目录 A 挂到目录 B 上，路径 B 就指向了 A 的
      inode；B 原来的内容只是被遮住，并没有改变，`umount` 之后就回来了。我们在宿主机上、
      在一个私有的 Mount Namespace（`unshare -m`）里试一试，宿主机的挂载表完全看不到
      它——和容器里的挂载一模一样。
!mkdir -p $LESSON_TMP/a $LESSON_TMP/b && echo in-a > $LESSON_TMP/a/a.txt && echo in-b > $LESSON_TMP/b/b.txt
!stat -c '%i %n' $LESSON_TMP/a $LESSON_TMP/b
capture INODE_A = /^(\d+) \S+\/a$/
capture INODE_B = /^(\d+) \S+\/b$/
!unshare -m sh -c 'mount --bind "$LESSON_TMP/a" "$LESSON_TMP/b"; stat -c "%i %n" "$LESSON_TMP/b"; ls "$LESSON_TMP/b"; umount "$LESSON_TMP/b"; stat -c "%i %n" "$LESSON_TMP/b"; ls "$LESSON_TMP/b"'
expect /^$INODE_A \S+\/b\na\.txt\n$INODE_B \S+\/b\nb\.txt$/
!grep -q "$LESSON_TMP/b" /proc/self/mountinfo && echo "the host saw it" || echo "the host never saw that mount"
expect the host never saw that mount
say:
  en: cshell's `bind` does the same in a child's private mount namespace and
      lines the inode numbers up: `b` leads to `a`'s inode while mounted, and
      to its own again after `umount`.
  zh: cshell 的 `bind` 命令在一个子进程的私有 Mount Namespace 里做同样的事，并把
      inode 号排在一起：挂载期间 `b` 指向 `a` 的 inode，`umount` 之后又回到它自己的。
bind $LESSON_TMP/a $LESSON_TMP/b
expect /after mount --bind\s+$INODE_A\b/
expect never showed it

step "Think 1: the cgroup namespace" / "思考题一：cgroup Namespace"
say:
  en: The host files the container's process under a cgroup of its own…
  zh: 在宿主机看来，容器进程属于它自己的一个 cgroup……
!cat /proc/$PID/cgroup
expect /cshell/
say:
  en: …but the process itself sees `/`: its **cgroup namespace** (Linux 4.6)
      makes its own cgroup look like the root, so it cannot learn, or reach,
      where the host placed it.
  zh: ……可进程自己看到的却是 `/`：它的 **cgroup Namespace**（Linux 4.6 引入）让它
      自己的 cgroup 看起来就是根，于是它既不知道、也碰不到宿主机把它放在了哪里。
exec hello cat /proc/self/cgroup
expect /^0::\/$/
expect-not cshell

step "Think 2: copyData" / "思考题二：copyData"
say:
  en: Mount a *new volume* over a directory that has content in the image, and
      that content is copied into the volume first (Docker calls it copyData).
  zh: 把一个*新的数据卷*挂到镜像里本来就有内容的目录上，这些内容会先被复制进卷里
      （Docker 把这叫作 copyData）。
requires run -v (issue #6)
run -d --name copied -v /app helloworld
inspect --format '{{json .Mounts}}' copied
capture COPYDIR = /"Source": ?"([^"]+)"/
!ls $COPYDIR
expect app.sh
say:
  en: A host directory bound over it gets nothing: the image's files are
      simply hidden.
  zh: 而绑定上去的宿主机目录什么也得不到：镜像里的文件只是被遮住了。
!mkdir -p $LESSON_TMP/empty
run --rm -v $LESSON_TMP/empty:/app helloworld ls -A /app
expect-not app.sh
reality:
  en: The article's hint suggests copyData explains content appearing in
      `/home` after `-v /home:/test`. Docker copies only into new (anonymous or
      named) volumes, never into a host directory you bind.
  zh: 原文的提示暗示 copyData 会让内容出现在 `-v /home:/test` 的 `/home` 里。
      实际上 Docker 只会往新建的（匿名或具名）卷里复制，从不往你绑定的宿主机目录里复制。

step "Think 3: CPU and memory limits in the cgroup files" / "思考题三：cgroup 文件里的 CPU 与内存限制"
say:
  en: Limits are numbers the runtime writes into the container's cgroup files;
      the kernel enforces them. Read them back from the host.
  zh: 资源限制就是运行时写进容器 cgroup 文件里的数字，由内核来执行。我们从宿主机上
      把它们读出来。
requires run --memory --cpus (issue #6)
run -d --name limited --memory 64m --cpus 0.5 helloworld
set LPID = inspect --format '{{.State.Pid}}' limited
!sh ../cgroup-limits.sh $LPID
expect 67108864
expect /50000/
reality:
  en: The article's files are cgroup v1: `cpu.cfs_quota_us`, `cpu.cfs_period_us`
      and `memory.limit_in_bytes`. Current distributions use cgroup v2, where the
      same limits are `cpu.max` ("50000 100000") and `memory.max`.
  zh: 原文里的文件属于 cgroup v1：`cpu.cfs_quota_us`、`cpu.cfs_period_us` 和
      `memory.limit_in_bytes`。现在的发行版使用 cgroup v2，同样的限制写在
      `cpu.max`（"50000 100000"）和 `memory.max` 里。

step "The whole picture" / "全景图"
say:
  en: Back to the first container. Its process runs in namespaces of its own
      and in a cgroup of its own; its files come from a stack of layers, top
      to bottom: the **rw layer** (what it changed), the **init layer**
      (placeholders for `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`) and the
      image's **read-only layers**, the empty ones shown as thin lines.
  zh: 回到第一个容器。它的进程运行在自己的 Namespace 和 cgroup 里；它的文件来自
      一叠层，从上到下依次是：**可读写层**（它改动过的东西）、**Init 层**（给
      `/etc/hosts`、`/etc/hostname`、`/etc/resolv.conf` 占位）以及镜像的**只读层**，
      空层显示为细线。
layer stack hello
expect rw layer
expect init layer
expect /image layer 1\/\d+ \(bottom\)/
say:
  en: That is all a container is: an ordinary process, a few namespaces, a
      cgroup, and a union mount. When the lesson ends it removes what it made.
  zh: 容器不过如此：一个普通进程，几个 Namespace，一个 cgroup，再加一个联合挂载。
      课程结束时会删除它创建的所有东西。

cleanup
!sh $LESSON_DIR/registry.sh stop $LESSON_TMP/registry
