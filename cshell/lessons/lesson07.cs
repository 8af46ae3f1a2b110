# Lesson 07: the root filesystem. chroot and pivot_root, a rootfs made by hand, and the
# union mount that stacks an image's layers: copy-on-write and whiteouts.
# Reconstructed from what the series' later articles recall; the words are ours.
#
#   cshell --script lesson07.cs [--step | --fast] [--lang zh|en] [--from STEP] [--typing]
#
# It mounts an overlay on the host, in its scratch directory; the cleanup section (run at the
# end, and by `lesson reset lesson07`) unmounts whatever is still mounted there.

title en: Lesson 07 · The root filesystem: chroot, pivot_root and layers
title zh: 第 07 课 · 容器镜像：chroot、pivot_root 与分层的根文件系统

cd .

say:
  en: Lessons 05 and 06 gave a process its own view and its own limits. Its
      *files* are still the host's. A container gets a root directory of its
      own — the **rootfs**: everything `/` holds, from `/bin/sh` to `/etc`. An
      image is nothing more than that rootfs, packed in layers.

      Today we build a rootfs by hand, put a process in it two ways (`chroot`
      and `pivot_root`) and see why runtimes choose the second, then stack
      layers with overlayfs and watch what happens to a file you change or
      delete.
  zh: 第 05、06 课给了进程自己的视图和自己的资源限制，可它看到的*文件*仍然是宿主机的。
      容器需要一个属于自己的根目录——**rootfs**：`/` 下的一切，从 `/bin/sh` 到 `/etc`。
      所谓镜像，不过就是这样一个 rootfs，分成几层打包起来。

      今天我们亲手做一个 rootfs，用两种办法（`chroot` 和 `pivot_root`）把进程放进去，
      看看运行时为什么选第二种；然后用 overlayfs 把几层叠起来，观察修改和删除一个文件时
      发生了什么。

step "A root filesystem, made by hand" / "亲手做一个根文件系统"
say:
  en: A rootfs needs programs that run without anything from the host. The
      static busybox is one file holding `sh`, `ls`, `cat`, `mount` and some three
      hundred more; `--install -s` makes a link for each. `HANDMADE` is a marker,
      so we can always tell where we are.
  zh: rootfs 里的程序必须不依赖宿主机上的任何东西就能运行。静态编译的 busybox 只有一个
      文件，却包含了 `sh`、`ls`、`cat`、`mount` 等三百来个程序；`--install -s` 给每个
      程序建一个链接。`HANDMADE` 是一个记号文件，让我们随时知道自己在哪里。
!mkdir -p $LESSON_TMP/rootfs/bin $LESSON_TMP/rootfs/etc $LESSON_TMP/rootfs/tmp
!cp "$(command -v busybox)" $LESSON_TMP/rootfs/bin/busybox
!chroot $LESSON_TMP/rootfs /bin/busybox --install -s /bin
!echo "the rootfs of lesson 07" > $LESSON_TMP/rootfs/HANDMADE
!ls $LESSON_TMP/rootfs
expect /^HANDMADE\nbin\netc\ntmp$/
!ls $LESSON_TMP/rootfs/bin | wc -l
capture APPLETS = /(\d+)/

step "chroot: a new / for path lookups" / "chroot：为路径查找换一个 /"
say:
  en: `chroot DIR CMD` changes one thing for the process: where a path that
      starts with `/` begins. Its shell finds `/bin/ls` and `/HANDMADE` in our
      directory, and nothing of the host.
  zh: `chroot 目录 命令` 只为进程改变了一件事：以 `/` 开头的路径从哪里开始找。
      它的 shell 在我们的目录里找到 `/bin/ls` 和 `/HANDMADE`，宿主机的东西一样也看不到。
!chroot $LESSON_TMP/rootfs /bin/sh -c 'cat /HANDMADE; ls /; ls /bin | wc -l'
expect the rootfs of lesson 07
expect /^$APPLETS$/
say:
  en: But nothing else changed. The process is still in the host's **mount
      namespace**, where every mount of the host — including the real `/` — is
      still there, merely out of reach of `..`. A process that is root inside can
      walk out: `chroot()` into a subdirectory *without* moving its working
      directory (which is now outside its root, where `..` is not stopped), climb
      `..` to the top, and `chroot(".")` there. Here are those lines of
      `jail.sh`, and the escape, tried for real:
  zh: 但其他什么都没变。进程仍然在宿主机的 **Mount Namespace** 里，宿主机的所有挂载——
      包括真正的 `/`——都还在那里，只是 `..` 够不着而已。一个在里面拥有 root 权限的
      进程可以走出去：`chroot()` 到一个子目录，却*不*移动自己的工作目录（这个目录现在
      位于它的根之外，`..` 在那里不会被拦住），一路 `..` 爬到顶，再在那里 `chroot(".")`。
      下面是 `jail.sh` 里的这几行，以及一次真正的逃逸：
!sed -n '/^os.makedirs("\/.escape"/,/^os.chroot("\.")/p' jail.sh
expect os.chroot("/.escape")
!sh jail.sh chroot $LESSON_TMP/rootfs
expect /^chroot: +\/ is the hand-made rootfs/
expect /^after escape: +\/ is the HOST root; \S+ is visible from here$/

step "pivot_root: the old root is gone" / "pivot_root：旧的根不见了"
say:
  en: A runtime does better. In a **new mount namespace** it makes the rootfs a
      mount point, calls `pivot_root(new, put_old)` to swap the namespace's root
      for it, and then unmounts the old root. After that, the host's `/` is not
      above the container's `/`: it is simply not in the namespace. Done by
      hand with the host's tools (after `pivot_root`, `umount`, `rmdir` and `ls`
      are busybox's, from our rootfs):
  zh: 运行时的做法更彻底。它在一个**新的 Mount Namespace** 里把 rootfs 变成挂载点，
      调用 `pivot_root(新根, 放旧根的目录)` 把这个 Namespace 的根换掉，然后卸载旧的根。
      从此宿主机的 `/` 并不在容器的 `/` 之上——它根本不在这个 Namespace 里。用宿主机的
      工具手工做一遍（`pivot_root` 之后，`umount`、`rmdir` 和 `ls` 都是我们 rootfs 里
      busybox 的）：
!unshare -m sh -c 'mount --bind "$LESSON_TMP/rootfs" "$LESSON_TMP/rootfs" && cd "$LESSON_TMP/rootfs" && mkdir old-root && pivot_root . old-root && umount -l /old-root && rmdir /old-root && cat /HANDMADE && ls /'
expect the rootfs of lesson 07
expect-not old-root
say:
  en: The same escape, from a root made with `pivot_root`, climbs to the top
      of the namespace — which is the rootfs itself.
  zh: 同样的逃逸手法，放在 `pivot_root` 做出来的根里，一路爬到的是这个 Namespace 的
      顶端——也就是 rootfs 自己。
!sh jail.sh pivot_root $LESSON_TMP/rootfs
expect /^pivot_root: +\/ is the hand-made rootfs/
expect /^after escape: +\/ is the hand-made rootfs; \S+ does not exist here$/
say:
  en: cshell starts every container this way. Its PID 1's mount table holds
      only the container's own mounts: the overlay at `/`, then `/proc`, `/dev`,
      `/sys`, the volumes and the bind-mounted `/etc` files, in runc's order.
      No trace of the host's root.
  zh: cshell 启动每个容器都用这种方式。容器 1 号进程的挂载表里只有容器自己的挂载：
      `/` 上的 overlay，然后是 `/proc`、`/dev`、`/sys`、卷和 bind mount 进来的几个
      `/etc` 文件，顺序和 runc 一样。宿主机的根不留一点痕迹。
run -d --name box busybox sleep 600
exec box awk '{print $5}' /proc/1/mountinfo
expect /^\/\n/
expect /^\/etc\/hostname$/
expect-not /old|pivot/
reality:
  en: Docker (runc) uses `pivot_root` too, and falls back to `chroot` only when
      it cannot (a root on a ramdisk, `DOCKER_RAMDISK`). `chroot` still has its
      place — building a system, a rescue shell — but it is not a wall.
  zh: Docker（runc）同样使用 `pivot_root`，只有在做不到时（根在 ramdisk 上，
      `DOCKER_RAMDISK`）才退回 `chroot`。`chroot` 仍有它的用处——构建系统、救援
      shell——但它不是一堵墙。

step "An image is a stack of layers" / "镜像是一叠层"
say:
  en: Copying a whole rootfs for every container would be slow and wasteful.
      An image is kept as **layers** instead: each Dockerfile step that changes
      files adds one, holding only what that step changed. A small image of
      three steps:
  zh: 给每个容器都复制一整份 rootfs，又慢又浪费。所以镜像是按**层**保存的：Dockerfile
      里每一步改动了文件，就多出一层，只记录这一步改了什么。一个三步的小镜像：
!mkdir -p $LESSON_TMP/image && printf '%s\n' 'FROM busybox' 'RUN mkdir /lesson && echo "from layer 2" > /lesson/a.txt && echo "delete me" > /lesson/old.txt' 'RUN echo "from layer 3" > /lesson/a.txt' > $LESSON_TMP/image/Dockerfile
!cat $LESSON_TMP/image/Dockerfile
expect FROM busybox
build -q -t lesson07 $LESSON_TMP/image
expect /^sha256:[0-9a-f]{64}$/
run -d --name layered lesson07 sleep 600
layer stack layered
expect rw layer
expect init layer
expect /image layer 3\/3/
expect /image layer 1\/3 \(bottom\)/
say:
  en: Both `RUN` steps wrote `/lesson/a.txt`. The container sees one file, the
      top one: overlayfs looks in the layers from the top down and stops at the
      first that has the path.
  zh: 两个 `RUN` 步骤都写了 `/lesson/a.txt`，容器却只看到一个文件，最上面那一层的：
      overlayfs 从上往下逐层查找，在第一个有这个路径的层停下。
exec layered cat /lesson/a.txt
expect from layer 3
layer whereis layered /lesson/a.txt
expect image layer 3

step "A union mount, made by hand" / "亲手做一个联合挂载"
say:
  en: An overlay mount needs four directories. `lowerdir` lists the read-only
      layers, **top first**, separated by `:`. `upperdir` receives every write.
      `workdir` is overlay's scratch space, on the same filesystem as the upper
      one. `merged` is where the union appears. Two lower layers of our own:
  zh: 一个 overlay 挂载需要四个目录。`lowerdir` 列出只读的各层，**上面的层写在前面**，
      用 `:` 分隔。`upperdir` 接收所有写入。`workdir` 是 overlay 的工作区，必须和 upper
      在同一个文件系统上。`merged` 是联合之后的样子出现的地方。先准备我们自己的两个下层：
!cd $LESSON_TMP && mkdir -p lower1 lower2 upper work merged && echo "from lower1" > lower1/a.txt && echo "only in lower1" > lower1/b.txt && echo "from lower2" > lower2/a.txt && echo "only in lower2" > lower2/c.txt
!cd $LESSON_TMP && grep -r . lower1 lower2 | sort
expect lower2/c.txt:only in lower2
!mount -t overlay overlay -o lowerdir=$LESSON_TMP/lower2:$LESSON_TMP/lower1,upperdir=$LESSON_TMP/upper,workdir=$LESSON_TMP/work $LESSON_TMP/merged
!findmnt -n -o FSTYPE,TARGET $LESSON_TMP/merged
expect /^overlay\s+\S+\/merged$/
!ls $LESSON_TMP/merged
expect /^a\.txt\nb\.txt\nc\.txt$/
!cat $LESSON_TMP/merged/a.txt
expect from lower2
expect-not from lower1
say:
  en: Three files, from two directories, in one tree. `a.txt` is in both
      layers; the upper of the two, `lower2` (named first), wins. The upper
      directory is still empty: nothing was written yet.
  zh: 两个目录里的三个文件，出现在同一棵树里。`a.txt` 两层都有，上面那层 `lower2`
      （写在前面的）胜出。upper 目录仍然是空的：还什么都没写过。
!ls -A $LESSON_TMP/upper | wc -l
expect /^0$/

step "Copy-on-write: a change lands in the upper layer" / "写时复制：修改落在 upper 层"
say:
  en: Append a line to `b.txt`, which lives in `lower1`. A lower layer is never
      written to; overlayfs first **copies the whole file up** into the upper
      directory, then changes the copy.
  zh: 给 `lower1` 里的 `b.txt` 追加一行。下层永远不会被写入；overlayfs 先把**整个文件
      复制到上层**（copy-up），再修改这个副本。
!echo "changed in merged" >> $LESSON_TMP/merged/b.txt
!cat $LESSON_TMP/upper/b.txt
expect /^only in lower1\nchanged in merged$/
!cat $LESSON_TMP/lower1/b.txt
expect only in lower1
expect-not changed in merged
say:
  en: The container's `/` is the same kind of mount, with its rw layer as the
      upper directory. Change a file of the image, and `layer diff` lists it
      as changed (C); the image itself stays as it was, for every other
      container.
  zh: 容器的 `/` 也是这样一个挂载，它的可读写层就是 upper 目录。修改镜像里的一个文件，
      `layer diff` 会把它列为已修改（C）；镜像本身保持原样，其他容器看到的还是原来的。
exec layered sh -c 'echo "student:x:1000:1000::/home:/bin/sh" >> /etc/passwd'
layer diff layered
expect C /etc/passwd
layer whereis layered /etc/passwd
expect was copied up
run --rm lesson07 grep -c student /etc/passwd
expect-status 1
expect /^0$/
reality:
  en: Copy-up copies the *whole* file, even to change one byte of a 1 GB
      database file. Write-heavy data belongs in a volume (lesson 08), not in the
      container's rw layer. The 2018 articles describe aufs, which Docker has
      since dropped; overlayfs behaves the same way here.
  zh: copy-up 复制的是*整个*文件，哪怕只改 1 GB 数据库文件里的一个字节。写入频繁的数据
      应该放进数据卷（第 08 课），而不是容器的可读写层。2018 年的文章讲的是 aufs，
      Docker 后来已经放弃了它；在这一点上 overlayfs 的行为是一样的。

step "Whiteouts: deleting a file you cannot delete" / "Whiteout：删除一个删不掉的文件"
say:
  en: `c.txt` lives in `lower2`, which is read-only. Deleting it from `merged`
      cannot remove it there, so overlayfs **hides** it: it puts a *whiteout* in
      the upper directory, a character device numbered 0, 0 with the same name.
  zh: `c.txt` 在只读的 `lower2` 里。从 `merged` 里删除它，并不能真的把它从那里删掉，
      于是 overlayfs 把它**藏起来**：在 upper 目录里放一个同名的 *whiteout*，也就是一个
      设备号为 0, 0 的字符设备。
!rm $LESSON_TMP/merged/c.txt
!ls $LESSON_TMP/merged
expect-not c.txt
!ls -l $LESSON_TMP/upper
expect /^c\S* +\d+ root +root +0, +0 .* c\.txt$/
!ls $LESSON_TMP/lower2
expect c.txt
say:
  en: In a container the same happens, and an image stores the whiteout as a
      file named `.wh.NAME` in the layer's tar (a tar has no portable way to
      say "deleted"). Delete `/lesson/old.txt`, commit, and list the new top
      layer:
  zh: 容器里也是一样。镜像在层的 tar 包里把 whiteout 存成名为 `.wh.文件名` 的文件
      （tar 没有通用的办法表示“已删除”）。删掉 `/lesson/old.txt`，commit，再列出新的
      最上层：
exec layered rm /lesson/old.txt
layer diff layered
expect D /lesson/old.txt
commit layered lesson07:deleted
expect /^sha256:[0-9a-f]{64}$/
save -o $LESSON_TMP/deleted.tar lesson07:deleted
!sh top-layer.sh $LESSON_TMP/deleted.tar
expect lesson/.wh.old.txt
expect etc/passwd
run --rm lesson07:deleted ls /lesson
expect a.txt
expect-not old.txt
say:
  en: A directory deleted and made again becomes **opaque** instead
      (`trusted.overlay.opaque=y`, `.wh..wh..opq` in a tar): nothing below it shows
      through.
  zh: 一个被删除后又重新创建的目录会变成**不透明**的（`trusted.overlay.opaque=y`，
      在 tar 里是 `.wh..wh..opq`）：它下面的层什么都透不上来。

step "Unmount: the layers stay as they were" / "卸载：各层原封不动"
say:
  en: Unmount the union. `merged` is an empty directory again; the lower
      layers are untouched; everything that happened is in `upper`: one copied-up
      file and one whiteout. That is exactly what a container's rw layer is, and
      what `commit` turns into a new layer.
  zh: 卸载这个联合挂载。`merged` 又变回空目录；下面各层没有任何改动；发生过的一切都在
      `upper` 里：一个复制上来的文件和一个 whiteout。这正是容器的可读写层，也正是
      `commit` 会变成新一层的东西。
!umount $LESSON_TMP/merged
!ls -A $LESSON_TMP/merged | wc -l
expect /^0$/
!cd $LESSON_TMP && ls lower1 lower2 upper
expect /^lower2:\na\.txt\nc\.txt$/
expect /^upper:\nb\.txt\nc\.txt$/
say:
  en: Namespaces, cgroups and a layered rootfs: lesson 08 puts the three
      together in one container, and takes it apart again with the host's tools.
  zh: Namespace、cgroups 和分层的 rootfs：第 08 课把这三样放进同一个容器，再用宿主机的
      工具把它拆开来看。

cleanup
![ -d "$LESSON_TMP" ] && for m in $(awk -v t="$LESSON_TMP/" 'index($5, t) == 1 {print $5}' /proc/self/mountinfo | sort -r); do umount -l "$m"; done
