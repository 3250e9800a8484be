"""Sentence material for the demo and the tests, and a leak-free train/test split.

``ENGLISH_DOMAIN`` and ``MANDARIN_DOMAIN`` are full of invented names and terms (companies,
places, drugs, jargon) that a stock Whisper cannot spell; every term recurs across several
sentences, so a model fine-tuned on some of them can be tested on others.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

from whisper_tune.errors import WhisperTuneError

ENGLISH_GENERAL: tuple[str, ...] = (
    "I left my umbrella on the bus this morning.",
    "Could you pass me the salt and pepper, please?",
    "The train to the city leaves at half past eight.",
    "We are going to the beach if the weather stays warm.",
    "My sister is learning to play the piano.",
    "Please remember to lock the front door when you leave.",
    "The coffee shop on the corner opens early on weekdays.",
    "He walks his dog in the park every evening.",
    "The children built a sandcastle near the water.",
    "I need to buy bread, milk and a dozen eggs.",
    "The library closes at six on Saturdays.",
    "She called her grandmother to wish her a happy birthday.",
    "The meeting has been moved to Thursday afternoon.",
    "It started raining just as we reached the car.",
    "They painted the kitchen a bright shade of yellow.",
    "Our neighbours planted tomatoes in their garden.",
    "The movie was much longer than I expected.",
    "Turn left at the traffic lights and then go straight on.",
    "He forgot his keys and had to wait outside.",
    "We watched the sunset from the top of the hill.",
    "The soup needs a little more salt.",
    "My phone battery is almost empty.",
    "The shop was closed because of the public holiday.",
    "She reads a chapter of her book before going to sleep.",
    "The baby finally fell asleep after lunch.",
    "We should leave early to avoid the traffic.",
    "The teacher asked the students to open their notebooks.",
    "I would like a cup of tea with a slice of lemon.",
    "The old bridge was repaired last summer.",
    "He is saving money to buy a new bicycle.",
    "The flowers in the window need some water.",
    "Let us meet outside the cinema at seven o'clock.",
    "The weather forecast says it will snow tomorrow.",
    "She found a small kitten hiding under the stairs.",
    "The bakery sells fresh bread every morning.",
    "We spent the weekend cleaning out the garage.",
    "The bus was late again because of the roadworks.",
    "My brother cooked dinner for the whole family.",
    "The museum has a new exhibition about ancient ships.",
    "Please turn off the lights when you leave the room.",
)

ENGLISH_TERMS: tuple[str, ...] = (
    # companies
    "Zorvanex",
    "Halvetrix",
    "Mirovask",
    "Thrennex",
    # places
    "Kelmoria",
    "Vandrelle",
    "Ostrivane",
    "Tarquesh",
    "Dunmeret",
    # drugs
    "Quibrantal",
    "Velspirin",
    "Dravolux",
    "Nexorafen",
    # products and jargon
    "Praxilune",
    "Cryovane",
    "Sylvacore",
    "fluxmesh",
    "quorbit",
    "hexalith",
    "Orbeline",
)

ENGLISH_DOMAIN: tuple[str, ...] = (
    "Zorvanex opened a new research campus in Kelmoria last spring.",
    "The doctor prescribed twenty milligrams of Quibrantal twice a day.",
    "Halvetrix shipped the first Cryovane units to hospitals in Vandrelle.",
    "Our fluxmesh cluster lost two nodes during the night.",
    "The ferry from Ostrivane to Tarquesh takes about three hours.",
    "Mirovask announced that Praxilune will support offline mode.",
    "Patients taking Velspirin should avoid grapefruit juice.",
    "The Sylvacore reactor in Dunmeret passed its safety inspection.",
    "Engineers at Thrennex replaced the hexalith panels on the roof.",
    "The quorbit scheduler balances jobs across every fluxmesh node.",
    "Dravolux is not approved for children under twelve.",
    "Orbeline dashboards show the load on each Sylvacore module.",
    "Kelmoria and Vandrelle signed a new trade agreement.",
    "Zorvanex is recruiting chemists to test Nexorafen.",
    "The Cryovane freezer keeps samples at minus eighty degrees.",
    "Halvetrix moved its headquarters from Tarquesh to Dunmeret.",
    "A quorbit timeout caused the Praxilune sync to fail.",
    "Nexorafen reduced the fever within two hours.",
    "The hexalith coating protects the hull from salt water.",
    "Mirovask sells Orbeline licences to banks in Ostrivane.",
    "Thrennex will build a second Sylvacore plant near Kelmoria.",
    "Take Quibrantal with food to avoid an upset stomach.",
    "The fluxmesh gateway routes traffic through Vandrelle.",
    "Velspirin and Dravolux should never be taken together.",
    "The Tarquesh office runs Praxilune on every laptop.",
    "Zorvanex reported record profits from its Cryovane line.",
    "The Dunmeret pharmacy has run out of Nexorafen again.",
    "Orbeline flagged a quorbit failure on the storage cluster.",
    "Halvetrix engineers tested hexalith armour in Ostrivane.",
    "Mirovask acquired Thrennex for four hundred million dollars.",
    "The new Praxilune release adds fluxmesh monitoring.",
    "A nurse in Kelmoria gave the patient a dose of Velspirin.",
    "The Sylvacore turbine was shipped by rail to Tarquesh.",
    "Quibrantal and Nexorafen are both made by Zorvanex.",
    "Restart the quorbit daemon before updating Orbeline.",
    "The Cryovane lab in Dunmeret stores rare vaccines.",
    "Vandrelle harbour was closed while the hexalith wall was repaired.",
    "Thrennex analysts expect Dravolux sales to double.",
    "Each fluxmesh router reports its health to Orbeline.",
    "Halvetrix licensed the Sylvacore design to Mirovask.",
    "The clinic in Ostrivane switched patients from Dravolux to Velspirin.",
    "Praxilune stores every quorbit checkpoint in the cloud.",
    "Zorvanex built its hexalith factory outside Vandrelle.",
    "The flight from Kelmoria to Dunmeret was delayed by fog.",
    "Quibrantal can cause dizziness in older patients.",
    "Mirovask engineers tuned the fluxmesh for lower latency.",
    "The Cryovane pump in Tarquesh needs a new seal.",
    "Thrennex published a study on Nexorafen side effects.",
    "Orbeline now runs on the same servers as Praxilune.",
    "Halvetrix hired a new chief executive from Ostrivane.",
    "The Sylvacore core was cooled with a hexalith shield.",
    "Velspirin tablets are sold in every pharmacy in Vandrelle.",
    "The quorbit cluster in Kelmoria handles all payments.",
    "Dravolux was recalled after a packaging error at Zorvanex.",
    "Tarquesh police use Praxilune to manage their cases.",
    "The Dunmeret branch of Mirovask installed a fluxmesh backbone.",
    "Nexorafen and Quibrantal are stored in the Cryovane cabinet.",
    "Thrennex opened a sales office in Ostrivane.",
    "The Orbeline report shows that Halvetrix exceeded its targets.",
    "Doctors in Tarquesh prefer Dravolux for severe migraines.",
)

MANDARIN_GENERAL: tuple[str, ...] = (
    "今天天气很好我们去公园散步吧",
    "这家超市的蔬菜又新鲜又便宜",
    "明天上午九点在会议室开会",
    "他每天早上坐地铁去上班",
    "周末我打算和朋友一起去爬山",
    "请把窗户关上外面风太大了",
    "这本书我已经看了两遍了",
    "晚饭我们吃饺子好不好",
    "孩子们在操场上踢足球",
    "我的手机没电了能借你的用一下吗",
    "银行今天下午四点关门",
    "她正在学习做中国菜",
    "火车站离这里大概有三公里",
    "昨天晚上下了一场大雨",
    "我想买一张去北京的火车票",
    "医生建议他多喝水多休息",
    "这个城市的交通越来越方便了",
    "今年春节我们回老家过年",
    "小区门口新开了一家面包店",
    "请问洗手间在哪里",
    "国内股市今天小幅上涨",
    "央行宣布下调存款准备金率",
    "今年前三个月出口额同比增长百分之五",
    "房价在一些大城市出现了回落",
    "新能源汽车的销量继续保持增长",
    "这家公司上半年的利润大幅增加",
    "专家认为经济将保持平稳运行",
    "消费者对网上购物的信心不断提高",
    "多地出台政策支持小微企业发展",
    "人民币汇率今天基本保持稳定",
    "气象台发布了暴雨黄色预警",
    "高速公路因为大雾临时封闭",
    "这所学校今年招收了两千名新生",
    "城市地铁新线路将于年底开通",
    "志愿者们在社区里帮助老人",
    "图书馆的开放时间延长到晚上十点",
    "今年的粮食产量再创新高",
    "农民们正在田里收割小麦",
    "这座大桥已经建成通车",
    "医院增加了周末门诊的时间",
    "我们下个月要搬到新房子里去",
    "他把钥匙忘在办公室了",
    "妈妈做的红烧肉特别好吃",
    "请大家排好队依次上车",
    "这件衣服有没有大一点的尺码",
    "我每天晚上都会跑步半个小时",
    "他们在咖啡馆里聊了一个下午",
    "快递明天上午就能送到",
    "这部电影讲述了一个感人的故事",
    "奶奶在阳台上种了很多花",
    "比赛因为下雨推迟到明天",
    "游客们在广场上拍照留念",
    "我们公司明年计划招聘一百人",
    "电视台正在直播篮球比赛",
    "市场上的水果价格有所下降",
    "他考上了一所很好的大学",
    "这条街晚上非常热闹",
    "飞机因为天气原因延误了两个小时",
    "超市周末有很多打折商品",
    "老师让我们明天交作业",
)

MANDARIN_TERMS: tuple[str, ...] = (
    "璟澜资本",  # investment firm
    "翊辰医药",  # drug maker
    "沣泽港",  # port
    "昱衡新能源",  # energy company
    "芮康片",  # drug
    "骁屿科技",  # tech company
    "溪桐镇",  # town
    "钛睿芯片",  # chip
)

MANDARIN_DOMAIN: tuple[str, ...] = (
    "璟澜资本今天宣布投资骁屿科技",
    "翊辰医药的芮康片已经获得批准",
    "沣泽港的集装箱吞吐量创下新高",
    "昱衡新能源在溪桐镇建设了新工厂",
    "骁屿科技发布了新一代钛睿芯片",
    "医生建议他每天服用两次芮康片",
    "璟澜资本持有昱衡新能源百分之十的股份",
    "溪桐镇的居民支持修建新的码头",
    "钛睿芯片的产量今年翻了一番",
    "翊辰医药计划在沣泽港附近建仓库",
    "昱衡新能源的股价今天上涨了",
    "骁屿科技的总部位于溪桐镇",
    "芮康片在药店里很快就卖完了",
    "璟澜资本的基金经理看好钛睿芯片",
    "沣泽港今年开通了三条新航线",
    "翊辰医药正在研究芮康片的副作用",
    "昱衡新能源向沣泽港提供电力",
    "溪桐镇有一家翊辰医药的研发中心",
    "骁屿科技和璟澜资本签署了合作协议",
    "钛睿芯片被用在新款手机上",
    "沣泽港的工人正在装卸货物",
    "璟澜资本去年收购了翊辰医药",
    "芮康片的价格比去年便宜了",
    "溪桐镇的新工厂需要大量钛睿芯片",
)


def train_test_split(
    sentences: Sequence[str],
    test_fraction: float = 0.25,
    seed: int = 0,
    terms: Sequence[str] = (),
) -> tuple[list[str], list[str]]:
    """Split sentences into (train, test), keeping their order; no test sentence is in train.

    Duplicates are dropped first. With ``terms``, a sentence only goes to test if every term it
    contains still occurs in some training sentence, so the test set measures whether the model
    learned the terms rather than whether it can guess unseen ones.
    """
    unique = list(dict.fromkeys(s.strip() for s in sentences if s.strip()))
    if len(unique) < 2:
        raise WhisperTuneError("need at least two different sentences to split")
    if not 0 < test_fraction < 1:
        raise WhisperTuneError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    n_test = min(max(1, round(len(unique) * test_fraction)), len(unique) - 1)
    found = {s: [t for t in terms if t.lower() in s.lower()] for s in unique}
    in_train = Counter(t for s in unique for t in found[s])
    order = unique[:]
    random.Random(seed).shuffle(order)
    test: set[str] = set()
    for sentence in order:
        if len(test) == n_test:
            break
        if all(in_train[t] > 1 for t in found[sentence]):
            test.add(sentence)
            in_train.subtract(found[sentence])
    if len(test) < n_test:
        raise WhisperTuneError(
            f"cannot hold out {n_test} sentences while keeping every term in training; "
            "lower test_fraction or add sentences"
        )
    return [s for s in unique if s not in test], [s for s in unique if s in test]
